"""k-means: k-means++ seeding and Lloyd iterations, built from two pure steps.

Seeding is the greedy variant of k-means++ (Arthur & Vassilvitskii, "k-means++: The
Advantages of Careful Seeding", SODA 2007): each next centre is drawn with probability
proportional to the squared distance to the nearest centre chosen so far, keeping the
best of ``2 + ln k`` candidates. The iterations are Lloyd's (Lloyd, "Least squares
quantization in PCM", IEEE Trans. Inf. Theory 28(2), 1982): assign every vector to its
nearest centroid, move every centroid to the mean of its vectors, until the centroids
stop moving.

One Lloyd iteration is two pure steps, so a federated version can run the first on
each member and the second on the coordinator::

    sums, counts = centroid_sums(vectors, centroids)      # per member (or per shard)
    centroids = centroids_from(sum(all_sums), sum(all_counts), centroids)  # merged

Per-shard sums and counts add up to the whole's, so the merged step equals the local
one. :func:`kmeans` is the local loop over exactly these steps, with ``n_init`` seeded
restarts, keeping the lowest inertia (sum of squared distances to the nearest centroid).

The loop runs its BLAS calls on one thread (as scikit-learn's ``KMeans`` does): the
products are small (n x d by d x k), where thread hand-offs cost more than they save,
and on a loaded machine several times more.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from threadpoolctl import threadpool_limits

from embedding_core.progress import Progress

__all__ = [
    "KMeansResult",
    "assign",
    "centroid_sums",
    "centroids_from",
    "check_k",
    "inertia",
    "kmeans",
    "kmeans_plus_plus",
]

logger = logging.getLogger(__name__)

DEFAULT_N_INIT = 4
DEFAULT_MAX_ITER = 300
DEFAULT_TOL = 1e-4

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class KMeansResult:
    """A k-means clustering of ``n`` vectors.

    Attributes:
        centroids: ``(k, d)`` cluster means.
        labels: ``(n,)`` index of each vector's nearest centroid.
        inertia: Sum of squared Euclidean distances of the vectors to their centroids.
        n_iter: Lloyd iterations run by the kept restart.
        converged: Whether the kept restart stopped by tolerance (not by ``max_iter``).
    """

    centroids: FloatArray
    labels: IntArray
    inertia: float
    n_iter: int
    converged: bool

    @property
    def k(self) -> int:
        """Number of clusters."""
        return int(self.centroids.shape[0])


def check_k(k: int, n: int) -> None:
    """Raise ``ValueError`` unless ``2 <= k <= n`` (callers re-word it for their users)."""
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if n < k:
        raise ValueError(f"{n} vectors cannot form {k} clusters: need at least k vectors")


def _as_matrix(vectors: NDArray[np.floating]) -> FloatArray:
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (n, d) array, got shape {matrix.shape}")
    return matrix


def _squared_distances(vectors: FloatArray, centroids: FloatArray) -> FloatArray:
    """``(n, k)`` squared Euclidean distances, clipped at zero (rounding)."""
    distances = (
        np.einsum("ij,ij->i", vectors, vectors)[:, None]
        - 2.0 * (vectors @ centroids.T)
        + np.einsum("ij,ij->i", centroids, centroids)[None, :]
    )
    return np.asarray(np.maximum(distances, 0.0), dtype=np.float64)


def assign(
    vectors: NDArray[np.floating], centroids: NDArray[np.floating]
) -> tuple[IntArray, FloatArray]:
    """Each vector's nearest centroid (ties: the lowest index) and its squared distance."""
    distances = _squared_distances(_as_matrix(vectors), _as_matrix(centroids))
    labels = np.argmin(distances, axis=1).astype(np.int64)
    return labels, distances[np.arange(len(labels)), labels]


def inertia(vectors: NDArray[np.floating], centroids: NDArray[np.floating]) -> float:
    """Sum of squared distances of the vectors to their nearest centroid."""
    return float(assign(vectors, centroids)[1].sum())


def centroid_sums(
    vectors: NDArray[np.floating], centroids: NDArray[np.floating]
) -> tuple[FloatArray, IntArray]:
    """The assignment step: per centroid, the sum of its nearest vectors and their count.

    Pure and additive: the sums and counts of disjoint shards add up to those of their
    union, so members can compute them apart and a coordinator can merge them.

    Returns:
        ``(sums, counts)``: ``(k, d)`` float64 sums and ``(k,)`` int64 counts.
    """
    matrix = _as_matrix(vectors)
    k = int(np.shape(centroids)[0])
    labels, _ = assign(matrix, centroids)
    n = matrix.shape[0]
    membership = sparse.csr_matrix(
        (np.ones(n, dtype=np.float64), (labels, np.arange(n))), shape=(k, n)
    )
    sums = np.asarray(membership @ matrix, dtype=np.float64).reshape(k, matrix.shape[1])
    counts = np.bincount(labels, minlength=k).astype(np.int64)
    return sums, counts


def centroids_from(
    sums: NDArray[np.floating], counts: NDArray[np.integer], previous: NDArray[np.floating]
) -> FloatArray:
    """The update step: each centroid moves to the mean of its vectors.

    A centroid no vector chose (count 0) stays where it was (``previous``), so the step
    needs nothing but the merged sums and counts.
    """
    sums_matrix = _as_matrix(sums)
    counts_array = np.asarray(counts, dtype=np.int64)
    previous_matrix = _as_matrix(previous)
    if sums_matrix.shape != previous_matrix.shape or counts_array.shape != (
        previous_matrix.shape[0],
    ):
        raise ValueError(
            f"sums {sums_matrix.shape}, counts {counts_array.shape} and previous "
            f"{previous_matrix.shape} do not describe the same k centroids"
        )
    filled = counts_array > 0
    updated = previous_matrix.copy()
    updated[filled] = sums_matrix[filled] / counts_array[filled, None]
    return updated


def kmeans_plus_plus(vectors: NDArray[np.floating], k: int, rng: np.random.Generator) -> FloatArray:
    """``k`` initial centroids by greedy k-means++ (Arthur & Vassilvitskii 2007)."""
    matrix = _as_matrix(vectors)
    n = matrix.shape[0]
    check_k(k, n)
    trials = 2 + int(math.log(k))
    squared_norms = np.einsum("ij,ij->i", matrix, matrix)
    centres = np.empty((k, matrix.shape[1]), dtype=np.float64)
    first = int(rng.integers(n))
    centres[0] = matrix[first]
    closest = np.maximum(squared_norms - 2.0 * matrix @ matrix[first] + squared_norms[first], 0.0)
    for index in range(1, k):
        total = closest.sum()
        if total <= 0.0:  # every vector already sits on a centre: duplicates
            candidates = rng.integers(n, size=trials)
        else:
            cumulative = np.cumsum(closest)
            draws = rng.random(trials) * total
            candidates = np.minimum(np.searchsorted(cumulative, draws), n - 1)
        to_candidates = np.maximum(
            squared_norms[None, :]
            - 2.0 * matrix[candidates] @ matrix.T
            + squared_norms[candidates, None],
            0.0,
        )
        options = np.minimum(closest[None, :], to_candidates)
        best = int(np.argmin(options.sum(axis=1)))
        centres[index] = matrix[candidates[best]]
        closest = options[best]
    return centres


def _lloyd(
    matrix: FloatArray, centroids: FloatArray, max_iter: int, tolerance: float
) -> tuple[FloatArray, int, bool]:
    for iteration in range(1, max_iter + 1):
        sums, counts = centroid_sums(matrix, centroids)
        updated = centroids_from(sums, counts, centroids)
        shift = float(((updated - centroids) ** 2).sum())
        centroids = updated
        if shift <= tolerance:
            return centroids, iteration, True
    return centroids, max_iter, False


def kmeans(
    vectors: NDArray[np.floating],
    k: int,
    *,
    n_init: int = DEFAULT_N_INIT,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    seed: int = 0,
    progress: bool = True,
) -> KMeansResult:
    """Cluster ``vectors`` into ``k`` groups; the best of ``n_init`` seeded restarts.

    Args:
        vectors: ``(n, d)`` vectors, ``n >= k``.
        k: Number of clusters, at least 2.
        n_init: Restarts (each seeded by k-means++); the lowest inertia is kept.
        max_iter: Lloyd iterations per restart at most.
        tol: Stop once the centroids' total squared shift falls under ``tol`` times the
            vectors' mean per-dimension variance (scikit-learn's convention).
        seed: Seed of every random choice; the same seed gives the same clustering.
        progress: Report the restarts through :class:`~embedding_core.progress.Progress`
            (off when a caller tracks a sweep of many small runs itself).

    Raises:
        ValueError: ``k < 2``, fewer vectors than ``k``, or ``n_init``/``max_iter`` < 1.
    """
    matrix = _as_matrix(vectors)
    check_k(k, matrix.shape[0])
    if n_init < 1 or max_iter < 1:
        raise ValueError(f"n_init and max_iter must be at least 1, got {n_init}, {max_iter}")
    tolerance = tol * float(np.mean(np.var(matrix, axis=0)))
    best: KMeansResult | None = None
    what = f"k-means k={k} on {matrix.shape[0]} vectors"
    with (
        Progress(n_init, what=what, unit="restarts", mode=None if progress else "off") as done,
        threadpool_limits(limits=1, user_api="blas"),
    ):
        for rng in np.random.default_rng(seed).spawn(n_init):
            start = kmeans_plus_plus(matrix, k, rng)
            centroids, n_iter, converged = _lloyd(matrix, start, max_iter, tolerance)
            labels, distances = assign(matrix, centroids)
            result = KMeansResult(centroids, labels, float(distances.sum()), n_iter, converged)
            if best is None or result.inertia < best.inertia:
                best = result
            done.advance()
    assert best is not None  # n_init >= 1
    logger.log(
        logging.INFO if progress else logging.DEBUG,
        "k-means: k=%d on %d vectors, %d restarts, inertia %.4g after %d iterations",
        k,
        matrix.shape[0],
        n_init,
        best.inertia,
        best.n_iter,
    )
    return best
