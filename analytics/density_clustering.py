"""Density clustering for an unknown number of clusters: HDBSCAN, with noise kept apart.

HDBSCAN (Campello, Moulavi & Sander, "Density-Based Clustering Based on Hierarchical
Density Estimates", PAKDD 2013; scikit-learn's implementation) finds clusters as
regions denser than their surroundings and leaves the records in no dense region as
*noise* (label ``-1``): they are reported as noise, never forced into a cluster.

Sentence embeddings have hundreds of dimensions, where HDBSCAN's neighbour searches are
slow (minutes on 10,000 records) and distances concentrate; the vectors are first
projected on their top ``dimensions`` principal components (seeded PCA), which keeps
the dense regions and makes the search fast (seconds).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA

from embedding_core.progress import Progress

__all__ = [
    "DEFAULT_DENSITY_DIMENSIONS",
    "DEFAULT_MIN_CLUSTER_SIZE",
    "DEFAULT_MIN_SAMPLES",
    "NOISE",
    "DensityResult",
    "density_clusters",
]

logger = logging.getLogger(__name__)

NOISE = -1
"""The label of a record in no cluster."""

DEFAULT_MIN_CLUSTER_SIZE = 15
DEFAULT_MIN_SAMPLES = 5
DEFAULT_DENSITY_DIMENSIONS = 32


@dataclass(frozen=True)
class DensityResult:
    """A density clustering of ``n`` vectors.

    Attributes:
        labels: ``(n,)`` cluster of each vector, ``NOISE`` (-1) for noise; clusters are
            numbered ``0 .. k-1``.
        k: Number of clusters found (noise not counted).
        noise: Number of noise vectors.
        dimensions: Dimensions HDBSCAN ran in (after the PCA projection).
    """

    labels: NDArray[np.int64]
    k: int
    noise: int
    dimensions: int

    @property
    def noise_fraction(self) -> float:
        """Share of the vectors left as noise."""
        return self.noise / len(self.labels) if len(self.labels) else 0.0


def density_clusters(
    vectors: NDArray[np.floating],
    *,
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
    min_samples: int | None = DEFAULT_MIN_SAMPLES,
    dimensions: int | None = DEFAULT_DENSITY_DIMENSIONS,
    seed: int = 0,
) -> DensityResult:
    """HDBSCAN clusters of ``vectors`` (after a seeded PCA to ``dimensions``).

    Args:
        vectors: ``(n, d)`` vectors.
        min_cluster_size: Fewest records a cluster may have (at least 2).
        min_samples: Neighbours that make a record a core point (smaller: less noise);
            ``None`` means ``min_cluster_size``.
        dimensions: Principal components kept before clustering; ``None`` (or ``>= d``)
            clusters in the full space.
        seed: Seed of the PCA's randomised solver.

    Raises:
        ValueError: ``min_cluster_size < 2``, or fewer vectors than ``min_cluster_size``.
    """
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (n, d) array, got shape {matrix.shape}")
    n, d = matrix.shape
    if min_cluster_size < 2:
        raise ValueError(f"the smallest cluster size must be at least 2, got {min_cluster_size}")
    if n < min_cluster_size:
        raise ValueError(
            f"{n} vectors cannot form a cluster of at least {min_cluster_size}: "
            "need at least that many vectors"
        )
    with Progress(None, what=f"density clustering of {n} vectors", unit="steps") as progress:
        reduced = matrix
        if dimensions is not None and dimensions < min(n, d):
            reduced = PCA(n_components=dimensions, random_state=seed).fit_transform(matrix)
            progress.advance()
        model = HDBSCAN(
            min_cluster_size=min_cluster_size,
            min_samples=min_samples,
            copy=True,
        )
        raw = np.asarray(model.fit_predict(reduced), dtype=np.int64)
        progress.advance()
    labels = _renumbered(raw)
    k = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    noise = int((labels == NOISE).sum())
    logger.info(
        "density clustering: %d clusters and %d noise among %d vectors (%d dimensions)",
        k,
        noise,
        n,
        reduced.shape[1],
    )
    return DensityResult(labels=labels, k=k, noise=noise, dimensions=int(reduced.shape[1]))


def _renumbered(raw: NDArray[np.int64]) -> NDArray[np.int64]:
    """Clusters numbered by size (largest first), noise kept at ``NOISE``."""
    labels = np.full(raw.shape, NOISE, dtype=np.int64)
    found, sizes = np.unique(raw[raw >= 0], return_counts=True)
    order = found[np.lexsort((found, -sizes))]
    for new, old in enumerate(order):
        labels[raw == old] = new
    return labels
