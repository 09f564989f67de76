"""The vectors a node's analysis works on: its records encoded (cached), adapter on or off.

Every analysis command of ``fedembed node analyse`` reads its records through here: the
texts are encoded by the node's encoder backend through the embedding cache (a text
already encoded by the same model and backend is never encoded again), then, when an
adapter is named, passed through it (every record, whatever side the adapter was
trained for: the records are compared with each other, so they must share one space)
and normalised again. Nothing leaves the node.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedding_core.cache import EmbeddingCache
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, Encoder
from embedding_core.model_folder import CACHE_DIR_ENV

__all__ = ["RecordEncoder"]

logger = logging.getLogger(__name__)

_EPS_NORM = 1e-12


@dataclass
class RecordEncoder:
    """How a node turns its records into vectors for analysis.

    Attributes:
        model: The encoder folder (``None``: the bundled model).
        encoder_backend: ``torch``, ``onnx`` or ``onnx-int8``.
        adapter: A released adapter folder to apply, or ``None`` for the base encoder.
        cache_dir: The embedding cache (default ``$FEDEMBED_CACHE_DIR``, else the
            encoder's default cache).
    """

    model: str | Path | None = None
    encoder_backend: str = DEFAULT_ENCODER_BACKEND
    adapter: Path | None = None
    cache_dir: Path | None = None
    _loaded: Encoder | None = field(default=None, init=False, repr=False, compare=False)

    def description(self) -> dict[str, str | None]:
        """What made the vectors (recorded in every saved model's manifest)."""
        encoder = self._encoder()
        return {
            "model_id": encoder.model_id,
            "model_fingerprint": encoder.fingerprint,
            "encoder_backend": encoder.backend,
            "encoder_space": encoder.space,
            "adapter": str(self.adapter) if self.adapter is not None else None,
        }

    def _encoder(self) -> Encoder:
        if self._loaded is None:
            self._loaded = Encoder.load(self.model, backend=self.encoder_backend)
        return self._loaded

    def encode(self, texts: list[str], *, what: str = "encode records") -> NDArray[np.float32]:
        """Unit vectors of ``texts``, in order (cached; adapted when an adapter is named)."""
        encoder = self._encoder()
        folder = self.cache_dir or os.environ.get(CACHE_DIR_ENV) or None
        cache = EmbeddingCache(folder)
        vectors = cache.get_or_encode(encoder, texts, what=what)
        if self.adapter is None:
            return vectors
        from embedding_core.adapter import Adapter

        adapter = Adapter.load(self.adapter)
        adapter.check_base(encoder.fingerprint)
        adapted = adapter.transform(vectors)
        norms = np.linalg.norm(adapted, axis=1, keepdims=True)
        logger.info("analysis: adapter %s applied to %d records", self.adapter.name, len(texts))
        return np.asarray(adapted / np.maximum(norms, _EPS_NORM), dtype=np.float32)
