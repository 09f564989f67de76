"""Per-text on-disk cache of embeddings, shared by every collection that holds the text.

Each vector is stored under (the encoder's vector ``space``, ``normalize``, SHA-256 of
the text): a text already encoded by the same model, backend and normalisation is never
encoded again, whichever list it comes in (the whole corpus, a node's share of it, a
superset). Different backends' vectors never meet: their spaces differ. The store is one
SQLite file (write-ahead log, busy timeout), safe for several processes at once.

Vectors are the node's own plaintext embeddings: the cache belongs on the node's disk,
never on an untrusted host. Texts themselves are not stored, only their hashes, and
never logged. Entries of the earlier whole-list format (``*.npy``) are ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedding_core.encoder import DEFAULT_BATCH_SIZE, Encoder

__all__ = ["CACHE_DIR_ENV", "CACHE_FILE", "CacheStats", "EmbeddingCache", "default_cache_dir"]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "FEDEMBED_CACHE_DIR"
CACHE_FILE = "embeddings.sqlite3"
_BUSY_TIMEOUT_MS = 60_000
_LOOKUP_CHUNK = 500  # bound parameters per SELECT (SQLite's limit is >= 999)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    space TEXT NOT NULL,
    normalize INTEGER NOT NULL,
    text_sha256 BLOB NOT NULL,
    dimension INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (space, normalize, text_sha256)
) WITHOUT ROWID
"""


def default_cache_dir() -> Path:
    """``$FEDEMBED_CACHE_DIR``, else ``~/.cache/fedembed/embeddings``."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    return Path.home() / ".cache" / "fedembed" / "embeddings"


@dataclass
class CacheStats:
    """Distinct texts served from the cache (hits) and encoded (misses) so far."""

    hits: int = 0
    misses: int = 0


def text_key(text: str) -> bytes:
    """The stored key of one text: its UTF-8 SHA-256 (the text itself is not stored)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Per-text vectors keyed by (encoder space, normalisation, text hash)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.stats = CacheStats()

    @property
    def path(self) -> Path:
        """The SQLite file holding the vectors."""
        return self.directory / CACHE_FILE

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.directory.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000)
        try:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(_SCHEMA)
            yield connection
        finally:
            connection.close()

    def lookup(
        self, space: str, keys: Sequence[bytes], *, normalize: bool, dimension: int
    ) -> dict[bytes, NDArray[np.float32]]:
        """The stored vectors among ``keys`` in ``space`` (malformed rows are left out)."""
        found: dict[bytes, NDArray[np.float32]] = {}
        with self._connect() as connection:
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    "SELECT text_sha256, dimension, vector FROM vectors WHERE space = ? "
                    f"AND normalize = ? AND text_sha256 IN ({marks})",
                    (space, int(normalize), *chunk),
                )
                for key, width, blob in rows:
                    if width == dimension and len(blob) == 4 * dimension:
                        found[bytes(key)] = np.frombuffer(blob, dtype="<f4")
        return found

    def store(
        self,
        space: str,
        keys: Sequence[bytes],
        vectors: NDArray[np.float32],
        *,
        normalize: bool,
    ) -> None:
        """Store one vector per key in ``space`` (replacing any entry of that key)."""
        data = np.ascontiguousarray(vectors, dtype="<f4")
        rows = [
            (space, int(normalize), key, data.shape[1], data[i].tobytes())
            for i, key in enumerate(keys)
        ]
        with self._connect() as connection, connection:
            connection.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)", rows)

    def get_or_encode(
        self,
        encoder: Encoder,
        texts: Sequence[str],
        *,
        normalize: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool | None = None,
        what: str = "encode",
    ) -> NDArray[np.float32]:
        """Vectors of ``texts`` in order: stored ones read back, only the others encoded.

        A cache that cannot be read or written (a damaged or read-only file) is
        reported once in the log and bypassed: the texts are encoded, never refused.
        """
        keys = [text_key(text) for text in texts]
        first: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        unique = list(first)
        space, dimension = encoder.space, encoder.dimension
        try:
            found = self.lookup(space, unique, normalize=normalize, dimension=dimension)
        except sqlite3.Error as exc:
            logger.warning(
                "cache: %s unreadable (%s); encoding without it (delete the file to reset)",
                self.path,
                exc,
            )
            found = {}
        missing = [key for key in unique if key not in found]
        self.stats.hits += len(unique) - len(missing)
        self.stats.misses += len(missing)
        logger.info(
            "cache: space=%s texts=%d hits=%d misses=%d",
            space[:12],
            len(texts),
            len(unique) - len(missing),
            len(missing),
        )
        if missing:
            encoded = encoder.encode(
                [texts[first[key]] for key in missing],
                batch_size=batch_size,
                normalize=normalize,
                show_progress=show_progress,
                what=what,
            )
            found.update(zip(missing, encoded, strict=True))
            try:
                self.store(space, missing, encoded, normalize=normalize)
            except sqlite3.Error as exc:
                logger.warning("cache: could not store in %s (%s); continuing", self.path, exc)
        out = np.empty((len(texts), dimension), dtype=np.float32)
        for index, key in enumerate(keys):
            out[index] = found[key]
        return out

    def __len__(self) -> int:
        """How many vectors are stored (all spaces)."""
        if not self.path.is_file():
            return 0
        with self._connect() as connection:
            (count,) = connection.execute("SELECT COUNT(*) FROM vectors").fetchone()
        return int(count)

    def clear(self) -> int:
        """Delete every stored vector (and old-format ``*.npy`` entries); returns how many."""
        removed = 0
        if self.directory.is_dir():
            for path in self.directory.glob("*.npy"):
                path.unlink(missing_ok=True)
                removed += 1
        if self.path.is_file():
            with self._connect() as connection, connection:
                removed += connection.execute("DELETE FROM vectors").rowcount
        return removed
