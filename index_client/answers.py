"""The gateway's answers as typed values (parsed from its JSON; never vectors or text).

Each type's ``from_json`` reads the JSON document of one route and raises ``KeyError``,
``TypeError`` or ``ValueError`` on anything else; the clients turn that into an
:class:`~index_client.errors.UnexpectedAnswerError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from index_client.vector_space import VectorSpace

__all__ = [
    "ApiKey",
    "CkksCollection",
    "Collection",
    "IssuedKey",
    "SearchHit",
    "SearchResult",
    "UploadReceipt",
    "list_of",
]

T = TypeVar("T")


def _object(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise TypeError(f"expected a JSON object, got {type(document).__name__}")
    return document


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a JSON list, got {type(value).__name__}")
    return tuple(str(v) for v in value)


def list_of(parse: Callable[[Any], T]) -> Callable[[Any], list[T]]:
    """A parser of a JSON list whose items ``parse`` reads."""

    def parse_list(document: Any) -> list[T]:
        if not isinstance(document, list):
            raise TypeError(f"expected a JSON list, got {type(document).__name__}")
        return [parse(item) for item in document]

    return parse_list


@dataclass(frozen=True)
class Collection:
    """A collection's parameters and sizes (protection ``at-rest``, ``dcpe`` or ``ckks``)."""

    name: str
    dimension: int
    metric: str
    protection: str
    documents: int
    generation: int
    last_seq: int
    folded_seq: int
    space: VectorSpace | None = None  # the encoder space of its vectors, once recorded

    @classmethod
    def from_json(cls, document: Any) -> Collection:
        """Parse the gateway's collection answer."""
        d = _object(document)
        return cls(
            name=str(d["name"]),
            dimension=int(d["dimension"]),
            metric=str(d["metric"]),
            protection=str(d["protection"]),
            documents=int(d["documents"]),
            generation=int(d["generation"]),
            last_seq=int(d["last_seq"]),
            folded_seq=int(d["folded_seq"]),
            space=VectorSpace.from_fields(d),  # a malformed one is a ValueError
        )


@dataclass(frozen=True)
class CkksCollection:
    """A CKKS collection's sizes (the answer of creating it or putting a block)."""

    name: str
    dimension: int
    documents: int
    blocks: int
    stored_bytes: int

    @classmethod
    def from_json(cls, document: Any) -> CkksCollection:
        """Parse a CKKS collection answer."""
        d = _object(document)
        return cls(
            name=str(d["name"]),
            dimension=int(d["dimension"]),
            documents=int(d["documents"]),
            blocks=int(d["blocks"]),
            stored_bytes=int(d["stored_bytes"]),
        )


@dataclass(frozen=True)
class SearchHit:
    """One result: a document's opaque id, its owning node, its rank and maybe its score.

    ``rank`` is 1 for the best hit. ``score`` is ``None`` unless the key's score release
    is ``coarse`` (rounded to the gateway's grid) or ``exact``; the default ``rank``
    release gives ranks only.
    """

    doc_id: str
    owner: str
    rank: int
    score: float | None = None


def _hit(position: int, document: Any) -> SearchHit:
    d = _object(document)
    score = d.get("score")
    return SearchHit(
        doc_id=str(d["doc_id"]),
        owner=str(d["owner"]),
        rank=int(d.get("rank", position + 1)),
        score=None if score is None else float(score),
    )


@dataclass(frozen=True)
class SearchResult:
    """The answer of a query, in rank order (best hit first)."""

    collection: str
    k: int
    hits: tuple[SearchHit, ...]

    @classmethod
    def from_json(cls, document: Any) -> SearchResult:
        """Parse the gateway's query answer."""
        d = _object(document)
        rows = d["results"]
        if not isinstance(rows, list):
            raise TypeError("results is not a list")
        hits = tuple(sorted((_hit(i, h) for i, h in enumerate(rows)), key=lambda h: h.rank))
        return cls(collection=str(d["collection"]), k=int(d["k"]), hits=hits)

    @property
    def doc_ids(self) -> list[str]:
        """The hits' document ids, best first."""
        return [h.doc_id for h in self.hits]

    @property
    def scores(self) -> list[float | None]:
        """The hits' released scores, best first (``None`` where only ranks are released)."""
        return [h.score for h in self.hits]


@dataclass(frozen=True)
class UploadReceipt:
    """What an acknowledged (durable) batch upsert did."""

    collection: str
    inserted: int
    updated: int
    seq: int

    @classmethod
    def from_json(cls, document: Any) -> UploadReceipt:
        """Parse the gateway's upload answer."""
        d = _object(document)
        return cls(
            collection=str(d["collection"]),
            inserted=int(d["inserted"]),
            updated=int(d["updated"]),
            seq=int(d["seq"]),
        )


@dataclass(frozen=True)
class ApiKey:
    """A partner or node key's public record (never its token) and its query policy.

    ``vector_queries``: whether it may query with raw vectors; ``score_release``:
    ``rank``, ``coarse`` or ``exact``; ``query_budget`` answered queries per
    ``budget_window_s`` seconds; ``suspended_at``: when it was suspended for probing.
    """

    key_id: str
    role: str
    name: str
    scopes: tuple[str, ...]
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

    @classmethod
    def from_json(cls, document: Any) -> ApiKey:
        """Parse the gateway's key answer."""
        d = _object(document)
        revoked = d.get("revoked_at")
        suspended = d.get("suspended_at")
        return cls(
            key_id=str(d["key_id"]),
            role=str(d["role"]),
            name=str(d["name"]),
            scopes=_strings(d["scopes"]),
            top_k_cap=int(d["top_k_cap"]),
            rate_per_minute=int(d["rate_per_minute"]),
            burst=int(d["burst"]),
            created_at=str(d["created_at"]),
            revoked_at=None if revoked is None else str(revoked),
            vector_queries=bool(d.get("vector_queries", False)),
            score_release=str(d.get("score_release", "rank")),
            query_budget=int(d.get("query_budget", 1000)),
            budget_window_s=int(d.get("budget_window_s", 86_400)),
            suspended_at=None if suspended is None else str(suspended),
        )


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued: its record and its token (shown in this answer only)."""

    key: ApiKey
    token: str = field(repr=False)  # a secret: never in logs

    @classmethod
    def from_json(cls, document: Any) -> IssuedKey:
        """Parse the gateway's answer to issuing a key (it must carry the token)."""
        token = _object(document).get("token")
        if not isinstance(token, str) or not token:
            raise KeyError("token")
        return cls(key=ApiKey.from_json(document), token=token)
