"""Request and response bodies of the HTTP APIs (the OpenAPI schema comes from these).

Names (collections, nodes, partners) are :data:`Name` in bodies, :data:`NamePath` in
paths and :data:`OwnerQuery` in query strings: the one rule of :mod:`index_client.names`,
checked before a handler runs, so a name that is ``..``, holds a ``/`` or has 10,000
characters is a 422 with the standard error body, never a folder, a URL or a 500.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from index_client.names import (
    DOC_ID_PATTERN,
    NAME_MAX_CHARS,
    NAME_PATTERN,
    NAME_RE,
    NAME_RULE,
    name_problem,
    shown,
)
from secure_index.index.hnsw_collection import TAG_PATTERN
from secure_index.service.credentials import DEFAULT_TOP_K_CAP

__all__ = [
    "CollectionCreate",
    "CollectionInfo",
    "CredentialCreate",
    "CredentialInfo",
    "DeleteRequest",
    "DeleteResult",
    "ErrorBody",
    "ErrorDetail",
    "HitOut",
    "Name",
    "NamePath",
    "OwnerQuery",
    "QueryFilters",
    "QueryRequest",
    "QueryResult",
    "Scope",
    "StoreQuery",
    "UploadItem",
    "UploadRequest",
    "UploadResult",
]

# One definition of each identifier rule: the index validates with the same patterns.
NAME = NAME_PATTERN
DOC_ID = DOC_ID_PATTERN
TAG = TAG_PATTERN.pattern
SCOPE = rf"^(\*|{NAME_RE.pattern})$"


def _name(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(f"{shown(value)} is not a name: {problem} (expected {NAME_RULE})")
    return value


def _scope(value: str) -> str:
    return value if value == "*" else _name(value)


def _schema(pattern: str) -> WithJsonSchema:
    return WithJsonSchema(
        {"type": "string", "pattern": pattern, "minLength": 1, "maxLength": NAME_MAX_CHARS}
    )


Name = Annotated[str, AfterValidator(_name), _schema(NAME)]
"""A collection, node or partner name (:data:`index_client.names.NAME_RULE`)."""
Scope = Annotated[str, AfterValidator(_scope), _schema(SCOPE)]
"""A key's scope: a collection name, or ``*`` for every collection."""
NamePath = Annotated[Name, Path(description=f"A name: {NAME_RULE}.")]
"""A name as a path parameter (``{collection}``, ``{name}``, ``{owner}``)."""
OwnerQuery = Annotated[Name | None, Query(description=f"A node name: {NAME_RULE}.")]
"""An optional node name as a query parameter."""
MAX_TEXT = 2000
MAX_DIM = 4096


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Strict):
    """What went wrong, what was expected, how to fix it."""

    problem: str
    expected: str = ""
    fix: str = ""


class ErrorBody(_Strict):
    """Every 4xx/5xx answer has this body."""

    error: ErrorDetail


class QueryFilters(_Strict):
    """Restrict results to one owner node and/or documents carrying every tag."""

    owner: Name | None = None
    tags: list[str] = Field(default_factory=list, max_length=16)


class QueryRequest(_Strict):
    """A partner query: text (embedded by the gateway) or a vector, not both."""

    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    vector: list[float] | None = Field(default=None, min_length=1, max_length=MAX_DIM)
    k: int = Field(default=10, ge=1, le=1000)
    filters: QueryFilters = Field(default_factory=QueryFilters)


class HitOut(_Strict):
    """One result: the document's opaque id, its owner node, its rank and maybe its score.

    ``rank`` is 1 for the best hit; ``score`` is what the key's ``score_release`` allows:
    null (``rank``, the default), rounded (``coarse``) or the exact similarity.
    """

    doc_id: str
    owner: str
    rank: int = Field(ge=1)
    score: float | None


class QueryResult(_Strict):
    """Results of a query in rank order: ids, owners, ranks, scores; never vectors or text."""

    collection: str
    k: int
    results: list[HitOut]


class UploadItem(_Strict):
    """One document vector from a node (DCPE-encrypted for DCPE collections)."""

    id: str = Field(pattern=DOC_ID)
    vector: list[float] = Field(min_length=1, max_length=MAX_DIM)
    tags: list[str] = Field(default_factory=list, max_length=32)


class UploadRequest(_Strict):
    """An idempotent batch upsert."""

    items: list[UploadItem] = Field(min_length=1)
    space: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Encoder space of the vectors (Encoder.space); with encoder_backend and "
        "model_fingerprint. A collection refuses vectors of another space (409).",
    )
    encoder_backend: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    model_fingerprint: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class UploadResult(_Strict):
    """What an acknowledged (durable) upload did."""

    collection: str
    inserted: int
    updated: int
    seq: int


class DeleteRequest(_Strict):
    """Ids of the node's own documents to delete."""

    ids: list[str] = Field(min_length=1, max_length=10_000)


class DeleteResult(_Strict):
    """How many documents were deleted."""

    collection: str
    deleted: int


class CollectionCreate(_Strict):
    """A new collection."""

    name: Name
    dimension: int = Field(ge=1, le=MAX_DIM)
    metric: str = Field(default="cosine", pattern=r"^(cosine|ip|l2)$")
    protection: str = Field(default="at-rest", pattern=r"^(at-rest|dcpe)$")


class CollectionInfo(_Strict):
    """A collection's parameters and sizes."""

    name: str
    dimension: int
    metric: str
    protection: str
    documents: int
    generation: int
    last_seq: int
    folded_seq: int
    space: str | None = Field(
        default=None, description="Encoder space of its vectors (none: not recorded yet)."
    )
    encoder_backend: str | None = None
    model_fingerprint: str | None = None


class CredentialCreate(_Strict):
    """A new partner or node key."""

    role: str = Field(pattern=r"^(partner|node)$")
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=64)
    top_k_cap: int = Field(default=DEFAULT_TOP_K_CAP, ge=1, le=1000)
    rate_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    burst: int = Field(default=60, ge=1, le=100_000)
    vector_queries: bool = Field(
        default=False, description="Grant raw vector queries (risky: basis vectors probe)."
    )
    score_release: str = Field(
        default="rank",
        pattern=r"^(rank|coarse|exact)$",
        description="rank (score null), coarse (rounded) or exact (risky).",
    )
    query_budget: int = Field(default=1000, ge=1, le=1_000_000_000)
    budget_window_s: int = Field(default=86_400, ge=1, le=366 * 86_400)


class CredentialInfo(_Strict):
    """A key's record; ``token`` is present only in the answer that created it."""

    key_id: str
    role: str
    name: str
    scopes: list[str]
    top_k_cap: int
    rate_per_minute: int
    burst: int
    created_at: str
    revoked_at: str | None = None
    vector_queries: bool = False
    score_release: str = "rank"
    query_budget: int = 1000
    budget_window_s: int = 86_400
    suspended_at: str | None = None
    token: str | None = None


class StoreQuery(_Strict):
    """The gateway's query to the store (vectors already protected in DCPE mode)."""

    vectors: list[list[float]] = Field(min_length=1, max_length=64)
    k: int = Field(ge=1, le=10_000)
    owner: Name | None = None
    tags: list[str] = Field(default_factory=list)
