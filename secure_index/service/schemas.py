"""Request and response bodies of the HTTP APIs (the OpenAPI schema comes from these)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from secure_index.index.collection_spec import COLLECTION_PATTERN, DOC_ID_PATTERN
from secure_index.index.hnsw_collection import TAG_PATTERN

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
    "QueryFilters",
    "QueryRequest",
    "QueryResult",
    "StoreQuery",
    "UploadItem",
    "UploadRequest",
    "UploadResult",
]

# One definition of each identifier rule: the index validates with the same patterns.
NAME = COLLECTION_PATTERN.pattern
DOC_ID = DOC_ID_PATTERN.pattern
TAG = TAG_PATTERN.pattern
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

    owner: str | None = Field(default=None, pattern=NAME)
    tags: list[str] = Field(default_factory=list, max_length=16)


class QueryRequest(_Strict):
    """A partner query: text (embedded by the gateway) or a vector, not both."""

    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    vector: list[float] | None = Field(default=None, min_length=1, max_length=MAX_DIM)
    k: int = Field(default=10, ge=1, le=1000)
    filters: QueryFilters = Field(default_factory=QueryFilters)


class HitOut(_Strict):
    """One result: the document's opaque id, its owner node and the similarity score."""

    doc_id: str
    owner: str
    score: float


class QueryResult(_Strict):
    """Results of a query: ids, owners and scores only, never vectors or text."""

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

    name: str = Field(pattern=NAME)
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


class CredentialCreate(_Strict):
    """A new partner or node key."""

    role: str = Field(pattern=r"^(partner|node)$")
    name: str = Field(pattern=NAME)
    scopes: list[str] = Field(min_length=1, max_length=64)
    top_k_cap: int = Field(default=100, ge=1, le=1000)
    rate_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    burst: int = Field(default=60, ge=1, le=100_000)


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
    token: str | None = None


class StoreQuery(_Strict):
    """The gateway's query to the store (vectors already protected in DCPE mode)."""

    vectors: list[list[float]] = Field(min_length=1, max_length=64)
    k: int = Field(ge=1, le=10_000)
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
