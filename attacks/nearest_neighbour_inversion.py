"""Nearest-neighbour embedding inversion against a public corpus.

The baseline inversion of Song and Raghunathan, "Information Leakage in Embedding Models"
(ACM CCS 2020) and of Morris et al., "Text Embeddings Reveal (Almost) As Much As Text"
(EMNLP 2023): the attacker embeds a public corpus with the known encoder and answers each
target embedding with the public sentence of highest cosine similarity. It recovers the
words a target shares with its closest public paraphrase, and nothing the public corpus
lacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from attacks.bow_inversion import unit_rows

__all__ = ["ATTACK_NAME", "NearestNeighbourInverter"]

logger = logging.getLogger(__name__)

ATTACK_NAME = "nearest_neighbour_inversion"
_BLOCK = 2048  # target rows per similarity block (bounds memory)


class NearestNeighbourInverter:
    """Answer each target embedding with the most cosine-similar public text."""

    def __init__(self) -> None:
        self._texts: list[str] = []
        self._vectors: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)

    def fit(self, texts: Sequence[str], vectors: np.ndarray) -> NearestNeighbourInverter:
        """Store the public texts and their (L2-normalised) embeddings.

        Args:
            texts: Public auxiliary texts.
            vectors: Their embeddings ``(n, d)``, as the attacker obtained them.

        Returns:
            ``self``.
        """
        if len(texts) != len(vectors) or not texts:
            raise ValueError(f"need >= 1 aligned texts and vectors, got {len(texts)}")
        started = time.perf_counter()
        self._texts = list(texts)
        self._vectors = unit_rows(vectors)
        logger.info(
            "nn: indexed %d public texts in %.2f s", len(texts), time.perf_counter() - started
        )
        return self

    def neighbours(self, vectors: np.ndarray) -> NDArray[np.int64]:
        """Index of the most cosine-similar public text for each target vector."""
        if not self._texts:
            raise RuntimeError("NearestNeighbourInverter.fit must run before inversion")
        targets = unit_rows(vectors)
        best = np.empty(len(targets), dtype=np.int64)
        for start in range(0, len(targets), _BLOCK):
            block = targets[start : start + _BLOCK] @ self._vectors.T
            best[start : start + _BLOCK] = np.argmax(block, axis=1)
        return best

    def invert(self, vectors: np.ndarray) -> list[str]:
        """The nearest public text of each target vector."""
        return [self._texts[i] for i in self.neighbours(vectors)]
