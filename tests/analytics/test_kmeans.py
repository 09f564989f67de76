"""k-means: golden against scikit-learn, the additive steps, seeding and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from analytics.kmeans import (
    assign,
    centroid_sums,
    centroids_from,
    inertia,
    kmeans,
    kmeans_plus_plus,
)


def _blobs(
    n: int, centers: int, dims: int, spread: float, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    x, y = make_blobs(n_samples=n, centers=centers, n_features=dims, cluster_std=spread,
                      random_state=seed)  # fmt: skip
    return np.asarray(x), np.asarray(y)


@pytest.mark.parametrize(("centers", "spread", "seed"), [(6, 1.0, 0), (12, 4.0, 1), (20, 6.0, 2)])
def test_inertia_matches_scikit_learn(centers: int, spread: float, seed: int) -> None:
    # Prepare: separated to heavily overlapping blobs
    vectors, _ = _blobs(800, centers, 16, spread, seed)

    # Execute
    ours = kmeans(vectors, centers, n_init=4, seed=seed)
    theirs = KMeans(n_clusters=centers, n_init=4, random_state=seed).fit(vectors)

    # Assert: same objective, same local search: the same optimum within 1 %
    assert ours.inertia == pytest.approx(theirs.inertia_, rel=0.01)
    assert ours.inertia == pytest.approx(inertia(vectors, ours.centroids), rel=1e-9)


def test_separated_blobs_are_recovered_exactly() -> None:
    vectors, truth = _blobs(400, 5, 8, 0.5, 3)

    result = kmeans(vectors, 5, seed=0)

    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert result.converged
    assert sorted(np.bincount(result.labels).tolist()) == sorted(np.bincount(truth).tolist())


def test_same_seed_same_clustering_other_seed_still_valid() -> None:
    vectors, _ = _blobs(300, 8, 6, 3.0, 4)

    first = kmeans(vectors, 8, seed=7)
    again = kmeans(vectors, 8, seed=7)

    np.testing.assert_array_equal(first.labels, again.labels)
    np.testing.assert_array_equal(first.centroids, again.centroids)
    assert first.labels.shape == (300,)
    assert set(first.labels.tolist()) <= set(range(8))


@given(
    vectors=arrays(
        np.float64,
        st.tuples(st.integers(2, 40), st.integers(1, 5)),
        elements=st.floats(-100, 100, allow_nan=False, width=32),
    ),
    k=st.integers(1, 5),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    seed=st.integers(0, 2**16),
)
def test_shard_sums_and_counts_add_up_to_the_whole(
    vectors: NDArray[np.float64], k: int, cuts: list[int], seed: int
) -> None:
    # Prepare: centroids drawn from the data, the records split into shards
    rng = np.random.default_rng(seed)
    centroids = vectors[rng.integers(len(vectors), size=k)] + rng.normal(size=(k, 1))
    bounds = sorted({min(c, len(vectors)) for c in cuts} | {0, len(vectors)})
    shards = [vectors[a:b] for a, b in itertools.pairwise(bounds)]

    # Execute
    whole_sums, whole_counts = centroid_sums(vectors, centroids)
    parts = [centroid_sums(shard, centroids) for shard in shards]

    # Assert
    np.testing.assert_array_equal(sum(c for _, c in parts), whole_counts)
    np.testing.assert_allclose(sum(s for s, _ in parts), whole_sums, rtol=1e-9, atol=1e-6)
    assert whole_counts.sum() == len(vectors)


def test_update_step_moves_to_means_and_keeps_an_unchosen_centroid() -> None:
    vectors = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    previous = np.array([[1.0, 1.0], [9.0, 9.0], [-50.0, -50.0]])

    sums, counts = centroid_sums(vectors, previous)
    updated = centroids_from(sums, counts, previous)

    np.testing.assert_array_equal(counts, [2, 1, 0])
    np.testing.assert_allclose(updated, [[1.0, 0.0], [10.0, 10.0], [-50.0, -50.0]])


def test_merged_shard_steps_reproduce_the_local_run() -> None:
    # Prepare: what a federated run does, each member stepping on its own records
    vectors, _ = _blobs(500, 7, 10, 2.5, 5)
    members = np.array_split(vectors, 3)
    local = kmeans(vectors, 7, n_init=1, seed=11)
    centroids = kmeans_plus_plus(vectors, 7, np.random.default_rng(11).spawn(1)[0])

    # Execute
    for _ in range(local.n_iter):
        parts = [centroid_sums(m, centroids) for m in members]
        centroids = centroids_from(sum(s for s, _ in parts), sum(c for _, c in parts), centroids)

    # Assert
    np.testing.assert_allclose(centroids, local.centroids, atol=1e-9)
    np.testing.assert_array_equal(assign(vectors, centroids)[0], local.labels)


def test_seeding_picks_distinct_data_points() -> None:
    vectors, _ = _blobs(200, 4, 3, 1.0, 6)

    centres = kmeans_plus_plus(vectors, 4, np.random.default_rng(0))

    rows = {tuple(v) for v in vectors}
    assert all(tuple(c) in rows for c in centres)
    assert len({tuple(c) for c in centres}) == 4


def test_duplicate_vectors_still_give_k_centroids() -> None:
    vectors = np.ones((10, 3))

    result = kmeans(vectors, 3, seed=0)

    assert result.centroids.shape == (3, 3)
    assert result.inertia == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("n", "k", "message"), [(10, 1, "at least 2"), (3, 5, "3 vectors cannot form 5 clusters")]
)
def test_bad_k_is_refused(n: int, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kmeans(np.zeros((n, 2)), k)


def test_mismatched_update_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="same k centroids"):
        centroids_from(np.zeros((3, 2)), np.zeros(2, dtype=np.int64), np.zeros((3, 2)))
