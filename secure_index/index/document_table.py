"""Document metadata of one collection: opaque id <-> hnswlib label, owner node, tags.

The table lives in an in-memory SQLite database (tags and owner filters are SQL
queries), so it never touches the disk in plaintext: :meth:`DocumentTable.serialize`
returns one image, which the store seals (AES-256-GCM envelope) into the collection's
snapshot. The query path resolves labels through two label-indexed lists that the
image also carries in a compact form, so opening a 100k-document collection does not
pay for turning 100k SQLite rows into Python objects. What only writes, filters and
lookups need is made on first use: the reverse map (id -> label), and the SQLite
database itself, which stays a view of the (already authenticated) image until then,
so an open copies no database bytes and a snapshot of an unchanged table re-seals the
image as it came.
"""

from __future__ import annotations

import json
import sqlite3
import struct
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
_MAGIC = b"FEDTBL1\0"
_HEADER = struct.Struct(">8sQQQQ")  # magic, sqlite bytes, rows, ids bytes, owners bytes
_SEP = "\0"  # ids and owner names never contain NUL (validated patterns)


@dataclass(frozen=True)
class DocumentRow:
    """One document as the index knows it (never its text or vector)."""

    label: int
    doc_id: str
    owner: str
    tags: tuple[str, ...]


class DocumentTable:
    """Id, owner and tag metadata of one collection.

    The collection calls mutations under its write lock and lookups under its read
    lock; an internal mutex serialises the SQLite connection itself.

    Args:
        image: An image from :meth:`serialize`, or ``None`` for an empty table.
    """

    def __init__(self, image: bytes | bytearray | memoryview | None = None) -> None:
        self._mutex = threading.Lock()
        self._doc_ids: list[str | None] = []
        self._owners: list[str | None] = []
        self._by_doc: dict[str, int] | None = {}
        self._count = 0
        self._db: sqlite3.Connection | None = None
        self._image: memoryview | None = None  # the loaded image until the database is made
        self._image_db: memoryview | None = None
        if image:
            self._load(memoryview(image).cast("B"))
        else:
            self._database()

    def _database(self) -> sqlite3.Connection:
        """The SQLite database, deserialised from the image on first use.

        Callers hold ``_mutex`` once the table is shared.
        """
        if self._db is None:
            db = sqlite3.connect(":memory:", check_same_thread=False)
            if self._image_db is not None:
                db.deserialize(self._image_db)
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO counters VALUES (?, 0)", (_NEXT_LABEL,))
            self._db, self._image, self._image_db = db, None, None
        return self._db

    def _load(self, image: memoryview) -> None:
        # Views, not slices: the image of a 100k-document table is about 18 MB.
        magic, db_len, rows, ids_len, owners_len = _HEADER.unpack_from(image)
        if magic != _MAGIC:
            raise ValueError("not a document table image")
        at = _HEADER.size
        self._image, self._image_db = image, image[at : at + db_len]
        at += db_len
        labels = np.frombuffer(image, dtype=">u8", count=rows, offset=at).astype(np.int64)
        at += 8 * rows
        codes = np.frombuffer(image, dtype=">u4", count=rows, offset=at).astype(np.int64)
        at += 4 * rows
        ids = str(image[at : at + ids_len], "utf-8").split(_SEP) if rows else []
        at += ids_len
        names = str(image[at : at + owners_len], "utf-8").split(_SEP) if rows else []
        owner_of = np.asarray(names, dtype=object)[codes] if rows else np.empty(0, dtype=object)
        if rows and int(labels[-1]) == rows - 1:  # labels ascend: 0..rows-1, no gaps
            self._doc_ids = ids  # type: ignore[assignment]  # a list[str] is a list[str | None]
            self._owners = [names[0]] * rows if len(names) == 1 else owner_of.tolist()
        else:  # deleted labels leave gaps (None)
            size = int(labels.max()) + 1 if rows else 0
            doc_ids = np.full(size, None, dtype=object)
            doc_ids[labels] = ids
            owners = np.full(size, None, dtype=object)
            owners[labels] = owner_of
            self._doc_ids, self._owners = doc_ids.tolist(), owners.tolist()
        self._count = rows
        self._by_doc = None  # built on the first write or lookup by id

    def _doc_index(self) -> dict[str, int]:
        if self._by_doc is None:
            self._by_doc = {d: n for n, d in enumerate(self._doc_ids) if d is not None}
        return self._by_doc

    def __len__(self) -> int:
        return self._count

    def label_of(self, doc_id: str) -> int | None:
        """The label of ``doc_id``, or ``None`` when the document is not present."""
        return self._doc_index().get(doc_id)

    def label_maps(self) -> tuple[list[str | None], list[str | None]]:
        """The label-indexed id and owner lists (read them under the collection's lock)."""
        return self._doc_ids, self._owners

    def resolve(self, label: int) -> tuple[str, str] | None:
        """``(doc_id, owner)`` of a label, or ``None`` for a deleted or unknown label."""
        if label >= len(self._doc_ids):
            return None
        doc_id = self._doc_ids[label]
        return None if doc_id is None else (doc_id, self._owners[label] or "")

    def upsert(
        self, doc_ids: Sequence[str], *, owner: str, tags: Sequence[Sequence[str]]
    ) -> list[tuple[int, bool]]:
        """Insert or update documents; returns ``(label, is_new)`` per document."""
        out: list[tuple[int, bool]] = []
        index = self._doc_index()
        with self._mutex, self._database() as db:
            (next_label,) = db.execute(
                "SELECT value FROM counters WHERE name = ?", (_NEXT_LABEL,)
            ).fetchone()
            for doc_id, doc_tags in zip(doc_ids, tags, strict=True):
                tag_list = sorted(set(doc_tags))
                label = index.get(doc_id)
                is_new = label is None
                if label is None:
                    label = int(next_label)
                    next_label += 1
                db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?)",
                    (label, doc_id, owner, json.dumps(tag_list)),
                )
                db.execute("DELETE FROM document_tags WHERE label = ?", (label,))
                db.executemany(
                    "INSERT INTO document_tags VALUES (?, ?)", [(label, t) for t in tag_list]
                )
                if label >= len(self._doc_ids):
                    grow = label + 1 - len(self._doc_ids)
                    self._doc_ids.extend([None] * grow)
                    self._owners.extend([None] * grow)
                self._doc_ids[label], self._owners[label] = doc_id, owner
                index[doc_id] = label
                self._count += is_new
                out.append((label, is_new))
            db.execute("UPDATE counters SET value = ? WHERE name = ?", (next_label, _NEXT_LABEL))
        return out

    def delete(self, doc_ids: Iterable[str]) -> list[int]:
        """Remove documents; returns the labels removed (unknown ids are ignored)."""
        removed: list[int] = []
        index = self._doc_index()
        with self._mutex, self._database() as db:
            for doc_id in doc_ids:
                label = index.pop(doc_id, None)
                if label is None:
                    continue
                self._doc_ids[label] = self._owners[label] = None
                db.execute("DELETE FROM documents WHERE label = ?", (label,))
                db.execute("DELETE FROM document_tags WHERE label = ?", (label,))
                self._count -= 1
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
            query = f"SELECT d.label FROM documents d WHERE {where}"
            rows = self._database().execute(query, params)
            return np.fromiter((int(r[0]) for r in rows), dtype=np.uint64)

    def rows(self, doc_ids: Iterable[str]) -> list[DocumentRow]:
        """Full rows of the given documents (missing ids are skipped)."""
        out = []
        with self._mutex:
            db = self._database()
            for doc_id in doc_ids:
                row = db.execute(
                    "SELECT label, doc_id, owner, tags FROM documents WHERE doc_id = ?", (doc_id,)
                ).fetchone()
                if row is not None:
                    out.append(DocumentRow(int(row[0]), row[1], row[2], tuple(json.loads(row[3]))))
        return out

    def serialize(self) -> bytes:
        """One image: the SQLite database plus the compact label maps (plaintext: seal it).

        A table not changed since it was loaded returns its image as it came.
        """
        with self._mutex:
            if self._image is not None:
                return bytes(self._image)
            database = self._database().serialize()
        present = [n for n, d in enumerate(self._doc_ids) if d is not None]
        names = sorted({self._owners[n] or "" for n in present})
        code = {name: n for n, name in enumerate(names)}
        labels = np.asarray(present, dtype=">u8").tobytes()
        codes = np.asarray([code[self._owners[n] or ""] for n in present], dtype=">u4").tobytes()
        ids = _SEP.join(self._doc_ids[n] or "" for n in present).encode("utf-8")
        owners = _SEP.join(names).encode("utf-8")
        header = _HEADER.pack(_MAGIC, len(database), len(present), len(ids), len(owners))
        return b"".join((header, database, labels, codes, ids, owners))

    def close(self) -> None:
        """Release the database."""
        with self._mutex:
            if self._db is not None:
                self._db.close()
            self._image = self._image_db = None
