"""Content-addressed on-disk cache of corpus embeddings.

The key hashes the encoder fingerprint, the encoding settings and every text in
order, so a changed model, setting or text never returns stale vectors. Vectors are
the node's own plaintext embeddings: the cache belongs on the node's disk, never on
an untrusted host.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedding_core.encoder import DEFAULT_BATCH_SIZE, Encoder

__all__ = ["CACHE_DIR_ENV", "CacheStats", "EmbeddingCache", "default_cache_dir"]

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "FEDEMBED_CACHE_DIR"
_FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$FEDEMBED_CACHE_DIR``, else ``~/.cache/fedembed/embeddings``."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    return Path.home() / ".cache" / "fedembed" / "embeddings"


@dataclass
class CacheStats:
    """Counts of cache lookups since the cache object was made."""

    hits: int = 0
    misses: int = 0


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 over the texts in order, length-prefixed so boundaries are unambiguous."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


class EmbeddingCache:
    """Stores ``encode`` results under a key derived from model, settings and texts."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.stats = CacheStats()

    def key(self, encoder: Encoder, texts: Sequence[str], *, normalize: bool) -> str:
        """The cache key for encoding ``texts`` with ``encoder``."""
        material = (
            f"v{_FORMAT_VERSION}|{encoder.fingerprint}|normalize={normalize}|"
            f"n={len(texts)}|{texts_digest(texts)}"
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.npy"

    def _load(self, path: Path, count: int, dimension: int) -> NDArray[np.float32] | None:
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            logger.warning("cache: unreadable entry %s (%s); re-encoding", path.name, exc)
            return None
        if vectors.shape != (count, dimension) or vectors.dtype != np.float32:
            logger.warning(
                "cache: entry %s has shape %s, expected %s; re-encoding",
                path.name,
                vectors.shape,
                (count, dimension),
            )
            return None
        return np.asarray(vectors, dtype=np.float32)

    def _store(self, path: Path, vectors: NDArray[np.float32]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, vectors, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_or_encode(
        self,
        encoder: Encoder,
        texts: Sequence[str],
        *,
        normalize: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool | None = None,
    ) -> NDArray[np.float32]:
        """Return cached vectors for ``texts``, encoding and storing them on a miss."""
        key = self.key(encoder, texts, normalize=normalize)
        path = self._path(key)
        if path.is_file():
            cached = self._load(path, len(texts), encoder.dimension)
            if cached is not None:
                self.stats.hits += 1
                logger.info("cache: hit key=%s texts=%d", key[:12], len(texts))
                return cached
        self.stats.misses += 1
        logger.info("cache: miss key=%s texts=%d", key[:12], len(texts))
        vectors = encoder.encode(
            texts, batch_size=batch_size, normalize=normalize, show_progress=show_progress
        )
        try:
            self._store(path, vectors)
        except OSError as exc:
            logger.warning("cache: could not store %s (%s); continuing without", path, exc)
        return vectors

    def clear(self) -> int:
        """Delete every cache entry; returns how many were removed."""
        removed = 0
        if self.directory.is_dir():
            for path in self.directory.glob("*.npy"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed
