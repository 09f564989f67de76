"""What a collection is: its fixed parameters, its document ids, and its search results.

:class:`CollectionSpec` (name, dimension, metric, protection, HNSW parameters, and the
encoder space of its vectors, recorded by the first upload that names one; validated
on construction, the name by :mod:`index_client.names`, the rule every layer applies, so
no collection folder is ever ``.``, ``..`` or outside the store), :func:`validate_doc_id`
for the opaque document ids every write and query names, and :class:`Hit`, the one
result type the index hands out (never a vector, never text). Kept apart from
:mod:`secure_index.index.hnsw_collection` so the service and the gateway can name them
without the graph code.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from index_client.names import (
    COLLECTION,
    DOC_ID_RE,
    DOC_ID_RULE,
    NAME_RE,
    NAME_RULE,
    name_problem,
    shown,
)
from index_client.vector_space import VectorSpace, VectorSpaceFormatError
from secure_index.errors import RequestError

__all__ = [
    "COLLECTION_PATTERN",
    "DOC_ID_PATTERN",
    "CollectionSpec",
    "Hit",
    "Metric",
    "Protection",
    "validate_doc_id",
]

# The rules of index_client.names; ``\Z`` (not ``$``) so that ``match`` refuses a final
# newline too.
DOC_ID_PATTERN = re.compile(DOC_ID_RE.pattern + r"\Z")
COLLECTION_PATTERN = re.compile(NAME_RE.pattern + r"\Z")


class Metric(enum.StrEnum):
    """Distance of a collection (hnswlib space names)."""

    COSINE = "cosine"
    INNER_PRODUCT = "ip"
    L2 = "l2"


class Protection(enum.StrEnum):
    """How vectors are protected beyond encryption at rest."""

    AT_REST = "at-rest"  # plaintext vectors in memory, AES-256-GCM on disk
    DCPE = "dcpe"  # vectors arrive DCPE-encrypted; the store never sees plaintexts


@dataclass(frozen=True)
class CollectionSpec:
    """Fixed parameters of a collection, validated on construction."""

    name: str
    dimension: int
    metric: Metric = Metric.COSINE
    protection: Protection = Protection.AT_REST
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 100
    # The encoder space of its vectors (index_client.vector_space): all three or none;
    # none until the first upload that names one (docs/index.md, "Encoder spaces").
    space: str | None = None
    encoder_backend: str | None = None
    model_fingerprint: str | None = None

    @property
    def vector_space(self) -> VectorSpace | None:
        """The recorded space of the collection's vectors (None: not recorded yet)."""
        return VectorSpace.from_fields(
            {
                "space": self.space,
                "encoder_backend": self.encoder_backend,
                "model_fingerprint": self.model_fingerprint,
            }
        )

    def __post_init__(self) -> None:
        problem = name_problem(self.name)
        if problem is not None:
            raise RequestError(
                f"{COLLECTION} {shown(self.name)} is not allowed: {problem}",
                expected=NAME_RULE,
                fix="choose a name such as 'scifact' or 'claims-2026'",
            )
        if not 1 <= self.dimension <= 65536:
            raise RequestError(
                f"dimension {self.dimension} is out of range",
                expected="an integer between 1 and 65536 (all-MiniLM-L6-v2: 384)",
                fix="pass the embedding dimension of your model",
            )
        if self.protection is Protection.DCPE and self.metric is not Metric.L2:
            raise RequestError(
                f"a DCPE collection must use metric l2, not {self.metric}",
                expected="metric l2 (scale-and-perturb preserves Euclidean comparisons)",
                fix="create the collection with --metric l2",
            )
        for name, value, low in (
            ("m", self.m, 2),
            ("ef_construction", self.ef_construction, 1),
            ("ef_search", self.ef_search, 1),
        ):
            if not low <= value <= 4096:
                raise RequestError(
                    f"{name}={value} is out of range",
                    expected=f"an integer between {low} and 4096",
                    fix="keep the defaults (m=16, ef_construction=200, ef_search=100)",
                )
        try:
            self.vector_space  # noqa: B018 - validates the three space fields together
        except VectorSpaceFormatError as exc:
            raise RequestError(
                f"collection {shown(self.name)} has a malformed vector space: {exc}",
                expected="space, encoder_backend and model_fingerprint of one encoder, or none",
                fix="leave them out: the first upload records its encoder's space",
            ) from None


class Hit(tuple[str, str, float]):
    """One search result ``(doc_id, owner, score)``: never a vector, never text.

    A plain tuple subclass built from one iterable by the C tuple constructor, so the
    query path creates hits without a Python call each (a ``NamedTuple``'s ``__new__``
    is Python code: about a third of the per-hit cost). Use :meth:`of` to build one
    from fields.
    """

    __slots__ = ()

    @classmethod
    def of(cls, doc_id: str, owner: str, score: float) -> Hit:
        """A hit from its fields."""
        return cls((doc_id, owner, score))

    @property
    def doc_id(self) -> str:
        """The document's opaque id."""
        return self[0]

    @property
    def owner(self) -> str:
        """The node that owns the document."""
        return self[1]

    @property
    def score(self) -> float:
        """Similarity (inner product, cosine) or negative squared distance (l2)."""
        return self[2]

    def as_dict(self) -> dict[str, str | float]:
        """The wire form ``{"doc_id", "owner", "score"}``."""
        return {"doc_id": self[0], "owner": self[1], "score": self[2]}

    def __repr__(self) -> str:
        return f"Hit(doc_id={self[0]!r}, owner={self[1]!r}, score={self[2]!r})"


def validate_doc_id(doc_id: object) -> str:
    """Check an opaque document id; raise :class:`RequestError` if malformed."""
    if not isinstance(doc_id, str) or not DOC_ID_PATTERN.match(doc_id):
        raise RequestError(
            f"document id {shown(doc_id)} is not allowed",
            expected=DOC_ID_RULE,
            fix="use opaque ids (e.g. a hash or the node's own id), never document text",
        )
    return doc_id
