"""Document metadata of one collection: opaque id <-> hnswlib label, owner node, tags.

The table lives in an in-memory SQLite database, so it never touches the disk in
plaintext: :meth:`DocumentTable.serialize` returns the database image, which the store
seals (AES-256-GCM envelope) into the collection's snapshot. Small dictionaries mirror
the columns the query path needs so a query resolves labels without SQL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DocumentRow", "DocumentTable"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    label INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    tags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_owner ON documents(owner);
CREATE TABLE IF NOT EXISTS document_tags (
    label INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (tag, label)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_NEXT_LABEL = "next_label"


@dataclass(frozen=True)
class DocumentRow:
    """One document as the index knows it (never its text or vector)."""

    label: int
    doc_id: str
    owner: str
    tags: tuple[str, ...]


class DocumentTable:
    """Id, owner and tag metadata of one collection (not thread-safe on its own).

    The collection calls mutations under its write lock and lookups under its read
    lock; an internal mutex serialises the SQLite connection itself.

    Args:
        image: A database image from :meth:`serialize`, or ``None`` for an empty table.
    """

    def __init__(self, image: bytes | None = None) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._mutex = threading.Lock()
        if image:
            self._db.deserialize(image)
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO counters VALUES (?, 0)", (_NEXT_LABEL,))
        self._by_label: dict[int, tuple[str, str]] = {}
        self._by_doc: dict[str, int] = {}
        for label, doc_id, owner in self._db.execute("SELECT label, doc_id, owner FROM documents"):
            self._by_label[int(label)] = (str(doc_id), str(owner))
            self._by_doc[str(doc_id)] = int(label)

    def __len__(self) -> int:
        return len(self._by_doc)

    def label_of(self, doc_id: str) -> int | None:
        """The label of ``doc_id``, or ``None`` when the document is not present."""
        return self._by_doc.get(doc_id)

    def resolve(self, label: int) -> tuple[str, str] | None:
        """``(doc_id, owner)`` of a label, or ``None`` for a deleted or unknown label."""
        return self._by_label.get(label)

    def upsert(
        self, doc_ids: Sequence[str], *, owner: str, tags: Sequence[Sequence[str]]
    ) -> list[tuple[int, bool]]:
        """Insert or update documents; returns ``(label, is_new)`` per document."""
        out: list[tuple[int, bool]] = []
        with self._mutex, self._db:
            (next_label,) = self._db.execute(
                "SELECT value FROM counters WHERE name = ?", (_NEXT_LABEL,)
            ).fetchone()
            for doc_id, doc_tags in zip(doc_ids, tags, strict=True):
                tag_list = sorted(set(doc_tags))
                label = self._by_doc.get(doc_id)
                is_new = label is None
                if label is None:
                    label = int(next_label)
                    next_label += 1
                self._db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?)",
                    (label, doc_id, owner, json.dumps(tag_list)),
                )
                self._db.execute("DELETE FROM document_tags WHERE label = ?", (label,))
                self._db.executemany(
                    "INSERT INTO document_tags VALUES (?, ?)", [(label, t) for t in tag_list]
                )
                self._by_label[label] = (doc_id, owner)
                self._by_doc[doc_id] = label
                out.append((label, is_new))
            self._db.execute(
                "UPDATE counters SET value = ? WHERE name = ?", (next_label, _NEXT_LABEL)
            )
        return out

    def delete(self, doc_ids: Iterable[str]) -> list[int]:
        """Remove documents; returns the labels removed (unknown ids are ignored)."""
        removed: list[int] = []
        with self._mutex, self._db:
            for doc_id in doc_ids:
                label = self._by_doc.pop(doc_id, None)
                if label is None:
                    continue
                del self._by_label[label]
                self._db.execute("DELETE FROM documents WHERE label = ?", (label,))
                self._db.execute("DELETE FROM document_tags WHERE label = ?", (label,))
                removed.append(label)
        return removed

    def matching_labels(self, *, owner: str | None, tags: Sequence[str]) -> np.ndarray:
        """Labels of the documents owned by ``owner`` (if given) carrying every tag."""
        clauses, params = [], []
        if owner is not None:
            clauses.append("d.owner = ?")
            params.append(owner)
        for tag in sorted(set(tags)):
            clauses.append("d.label IN (SELECT label FROM document_tags WHERE tag = ?)")
            params.append(tag)
        where = " AND ".join(clauses) if clauses else "1"
        with self._mutex:
            rows = self._db.execute(f"SELECT d.label FROM documents d WHERE {where}", params)
            return np.fromiter((int(r[0]) for r in rows), dtype=np.uint64)

    def rows(self, doc_ids: Iterable[str]) -> list[DocumentRow]:
        """Full rows of the given documents (missing ids are skipped)."""
        out = []
        with self._mutex:
            for doc_id in doc_ids:
                row = self._db.execute(
                    "SELECT label, doc_id, owner, tags FROM documents WHERE doc_id = ?", (doc_id,)
                ).fetchone()
                if row is not None:
                    out.append(DocumentRow(int(row[0]), row[1], row[2], tuple(json.loads(row[3]))))
        return out

    def serialize(self) -> bytes:
        """The database image (plaintext: the caller must seal it before it is stored)."""
        with self._mutex:
            return self._db.serialize()

    def close(self) -> None:
        """Release the database."""
        self._db.close()
