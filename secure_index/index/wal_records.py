"""The operations the store writes to its write-ahead log, as compact binary records.

A record is ``>I`` header length, a canonical JSON header (operation, ids, owner,
tags, dimension; the encoder space an upsert records for its collection, if any) and,
for upserts, the float32 vectors. The whole record is encrypted by
the write-ahead log before it reaches the disk.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field

import numpy as np

from index_client.vector_space import VectorSpace

__all__ = ["Operation", "WalRecord"]

_LENGTH = struct.Struct(">I")


class Operation(enum.StrEnum):
    """What a log record does."""

    UPSERT = "upsert"
    DELETE = "delete"


class _Key(enum.StrEnum):
    OP = "op"
    IDS = "ids"
    OWNER = "owner"
    TAGS = "tags"
    DIM = "dim"
    SPACE = "space"


@dataclass(frozen=True)
class WalRecord:
    """One logged operation on one collection."""

    op: Operation
    doc_ids: tuple[str, ...]
    owner: str
    tags: tuple[tuple[str, ...], ...] = ()
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    space: VectorSpace | None = None  # recorded for the collection with these vectors

    def encode(self) -> bytes:
        """The record's bytes (plaintext: the log encrypts them)."""
        header: dict[str, object] = {
            _Key.OP: str(self.op),
            _Key.IDS: list(self.doc_ids),
            _Key.OWNER: self.owner,
            _Key.TAGS: [list(t) for t in self.tags],
            _Key.DIM: int(self.vectors.shape[1]) if self.vectors.size else 0,
        }
        if self.space is not None:
            header[_Key.SPACE] = self.space.as_fields()
        raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        body = np.ascontiguousarray(self.vectors, dtype="<f4").tobytes()
        return _LENGTH.pack(len(raw)) + raw + body

    @classmethod
    def decode(cls, data: bytes) -> WalRecord:
        """Parse :meth:`encode`'s output (the log has already authenticated it)."""
        (length,) = _LENGTH.unpack_from(data)
        header = json.loads(data[_LENGTH.size : _LENGTH.size + length])
        dim = int(header[_Key.DIM])
        body = data[_LENGTH.size + length :]
        vectors = (
            np.frombuffer(body, dtype="<f4").reshape(-1, dim).astype(np.float32)
            if dim
            else np.zeros((0, 0), dtype=np.float32)
        )
        return cls(
            op=Operation(header[_Key.OP]),
            doc_ids=tuple(header[_Key.IDS]),
            owner=str(header[_Key.OWNER]),
            tags=tuple(tuple(t) for t in header[_Key.TAGS]),
            vectors=vectors,
            space=VectorSpace.from_fields(header[_Key.SPACE]) if _Key.SPACE in header else None,
        )
