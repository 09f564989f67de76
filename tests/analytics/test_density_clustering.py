"""HDBSCAN density clustering: golden against scikit-learn, noise, renumbering, errors."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.cluster import HDBSCAN
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from analytics.density_clustering import NOISE, density_clusters


def _blobs_in_noise(seed: int, dims: int = 4) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Three dense blobs of 150, 100 and 60 points in a sparse uniform background of 60."""
    blobs, truth = make_blobs(
        n_samples=[150, 100, 60],
        centers=np.eye(3, dims) * 20.0,
        n_features=dims,
        cluster_std=0.6,
        random_state=seed,
    )
    background = np.random.default_rng(seed).uniform(-15.0, 35.0, size=(60, dims))
    vectors = np.vstack([blobs, background])
    return vectors, np.concatenate([truth, np.full(60, NOISE)])


def test_finds_the_dense_clusters_and_calls_the_background_noise() -> None:
    vectors, truth = _blobs_in_noise(0)

    result = density_clusters(vectors, min_cluster_size=15, dimensions=None)

    assert result.k == 3
    in_blobs = truth >= 0
    assert adjusted_rand_score(truth[in_blobs], result.labels[in_blobs]) > 0.95
    assert np.mean(result.labels[~in_blobs] == NOISE) > 0.6  # most of the background
    assert result.noise == int((result.labels == NOISE).sum())
    assert result.noise_fraction == pytest.approx(result.noise / len(vectors))


def test_same_partition_as_scikit_learn_hdbscan() -> None:
    vectors, _ = _blobs_in_noise(1)

    ours = density_clusters(vectors, min_cluster_size=10, min_samples=5, dimensions=None)
    theirs = HDBSCAN(min_cluster_size=10, min_samples=5, copy=True).fit_predict(vectors)

    assert adjusted_rand_score(theirs, ours.labels) == 1.0
    np.testing.assert_array_equal(ours.labels == NOISE, theirs == -1)


def test_clusters_are_numbered_largest_first() -> None:
    vectors, _ = _blobs_in_noise(2)

    result = density_clusters(vectors, min_cluster_size=15, dimensions=None)

    sizes = np.bincount(result.labels[result.labels >= 0])
    assert list(sizes) == sorted(sizes, reverse=True)
    assert set(result.labels.tolist()) <= {NOISE, *range(result.k)}


def test_high_dimensional_vectors_are_projected_first() -> None:
    vectors, truth = _blobs_in_noise(3, dims=64)

    result = density_clusters(vectors, min_cluster_size=15, dimensions=8, seed=0)

    assert result.dimensions == 8
    in_blobs = truth >= 0
    assert adjusted_rand_score(truth[in_blobs], result.labels[in_blobs]) > 0.9


@pytest.mark.parametrize(
    ("n", "size", "message"), [(50, 1, "at least 2"), (5, 10, "need at least that many")]
)
def test_bad_settings_are_refused(n: int, size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        density_clusters(np.zeros((n, 3)), min_cluster_size=size)
