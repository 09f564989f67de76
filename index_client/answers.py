"""The gateway's answers as typed values (parsed from its JSON; never vectors or text).

Each type's ``from_json`` reads the JSON document of one route and raises ``KeyError``,
``TypeError`` or ``ValueError`` on anything else; the clients turn that into an
:class:`~index_client.errors.UnexpectedAnswerError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
    """One result: a document's opaque id, its owning node and the similarity score."""

    doc_id: str
    owner: str
    score: float


@dataclass(frozen=True)
class SearchResult:
    """The answer of a query, best hit first."""

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
        hits = tuple(
            SearchHit(doc_id=str(h["doc_id"]), owner=str(h["owner"]), score=float(h["score"]))
            for h in map(_object, rows)
        )
        return cls(collection=str(d["collection"]), k=int(d["k"]), hits=hits)

    @property
    def doc_ids(self) -> list[str]:
        """The hits' document ids, best first."""
        return [h.doc_id for h in self.hits]


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
    """A partner or node key's public record (never its token)."""

    key_id: str
    role: str
    name: str
    scopes: tuple[str, ...]
    top_k_cap: int
    rate_per_minute: int
    burst: int
    created_at: str
    revoked_at: str | None = None

    @classmethod
    def from_json(cls, document: Any) -> ApiKey:
        """Parse the gateway's key answer."""
        d = _object(document)
        revoked = d.get("revoked_at")
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
