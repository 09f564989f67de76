"""Exact (brute-force) top-k search by inner product, chunked to bound memory."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["exact_top_k"]

_QUERY_CHUNK = 256


def exact_top_k(
    queries: NDArray[np.float32], documents: NDArray[np.float32], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Return the indices and scores of the ``k`` best documents per query.

    Scores are inner products (cosine similarity for normalised vectors); rows are
    sorted best first, ties broken by lower document index.

    Args:
        queries: ``(q, d)`` query vectors.
        documents: ``(n, d)`` document vectors.
        k: How many to return per query (capped at ``n``).
    """
    if queries.ndim != 2 or documents.ndim != 2 or queries.shape[1] != documents.shape[1]:
        raise ValueError(f"shape mismatch: queries {queries.shape} vs documents {documents.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, documents.shape[0])
    indices = np.empty((queries.shape[0], k), dtype=np.int64)
    scores = np.empty((queries.shape[0], k), dtype=np.float32)
    for start in range(0, queries.shape[0], _QUERY_CHUNK):
        sims = queries[start : start + _QUERY_CHUNK] @ documents.T
        if k < sims.shape[1]:
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            part = np.tile(np.arange(sims.shape[1]), (sims.shape[0], 1))
        part_scores = np.take_along_axis(sims, part, axis=1)
        order = np.lexsort((part, -part_scores), axis=1)
        rows = slice(start, start + sims.shape[0])
        indices[rows] = np.take_along_axis(part, order, axis=1)
        scores[rows] = np.take_along_axis(part_scores, order, axis=1)
    return indices, scores
