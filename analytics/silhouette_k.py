"""Choosing k for k-means by the silhouette (Rousseeuw 1987) over a range of k.

For every k of the range, k-means clusters a seeded sample of the vectors and the
sample's mean silhouette is measured; the k with the highest silhouette wins (ties: the
smallest k). The sample keeps the sweep cheap on large record sets (k-means on 2,000
vectors per k instead of all of them); the final clustering then runs on every vector
with the chosen k. Silhouettes use Euclidean distance, k-means' own geometry (on unit
vectors it orders pairs as the cosine does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import pairwise_distances, silhouette_score

from analytics.kmeans import kmeans
from embedding_core.progress import track

__all__ = ["DEFAULT_SILHOUETTE_SAMPLE", "KChoice", "choose_k", "sample_silhouette"]

logger = logging.getLogger(__name__)

DEFAULT_SILHOUETTE_SAMPLE = 2000
"""Vectors the k sweep (and a reported silhouette) is measured on, at most."""


@dataclass(frozen=True)
class KChoice:
    """The k the silhouette chose.

    Attributes:
        k: The chosen number of clusters.
        scores: Mean silhouette of the sample per k tried.
        sample_size: Vectors the sweep ran on.
    """

    k: int
    scores: dict[int, float]
    sample_size: int


def _sample(n: int, size: int, seed: int) -> NDArray[np.int64]:
    if n <= size:
        return np.arange(n, dtype=np.int64)
    chosen = np.random.default_rng(seed).choice(n, size=size, replace=False)
    return np.sort(chosen).astype(np.int64)


def sample_silhouette(
    vectors: NDArray[np.floating],
    labels: NDArray[np.integer],
    *,
    sample_size: int = DEFAULT_SILHOUETTE_SAMPLE,
    seed: int = 0,
) -> float | None:
    """Mean silhouette of ``labels`` on a seeded sample; ``None`` with under 2 clusters.

    Labels below 0 (a density method's noise) are left out.
    """
    label_array = np.asarray(labels)
    kept = np.flatnonzero(label_array >= 0)
    if kept.size < 3:
        return None
    index = kept[_sample(kept.size, sample_size, seed)]
    sampled = label_array[index]
    clusters = np.unique(sampled).size
    if clusters < 2 or clusters >= index.size:
        return None
    return float(silhouette_score(np.asarray(vectors)[index], sampled, metric="euclidean"))


def choose_k(
    vectors: NDArray[np.floating],
    k_range: tuple[int, int],
    *,
    sample_size: int = DEFAULT_SILHOUETTE_SAMPLE,
    n_init: int = 2,
    seed: int = 0,
) -> KChoice:
    """The k in ``k_range`` (both ends included) with the best silhouette on a sample.

    Raises:
        ValueError: The range is not ``2 <= low <= high``, or the sample is too small
            for its low end (fewer than ``low + 1`` vectors).
    """
    low, high = k_range
    if low < 2 or high < low:
        raise ValueError(f"the k range must satisfy 2 <= low <= high, got {low}:{high}")
    matrix = np.asarray(vectors, dtype=np.float64)
    index = _sample(matrix.shape[0], sample_size, seed)
    sample = matrix[index]
    top = min(high, sample.shape[0] - 1)  # a silhouette needs k <= n - 1
    if top < low:
        raise ValueError(
            f"{sample.shape[0]} vectors cannot be split into {low} to {high} clusters "
            f"with a silhouette: need at least {low + 1} vectors"
        )
    scores: dict[int, float] = {}
    distances = pairwise_distances(sample, metric="euclidean")  # once for every k
    ks = list(range(low, top + 1))
    for k in track(ks, what=f"choose k by silhouette on {sample.shape[0]} vectors", unit="k"):
        result = kmeans(sample, k, n_init=n_init, seed=seed, progress=False)
        if np.unique(result.labels).size < 2:
            continue
        scores[k] = float(silhouette_score(distances, result.labels, metric="precomputed"))
    if not scores:
        raise ValueError("every k of the range put all the vectors in one cluster")
    chosen = max(scores, key=lambda k: (scores[k], -k))
    logger.info(
        "k by silhouette: k=%d (%.3f) among k=%d..%d on %d vectors",
        chosen,
        scores[chosen],
        low,
        top,
        sample.shape[0],
    )
    return KChoice(k=chosen, scores=scores, sample_size=int(sample.shape[0]))
