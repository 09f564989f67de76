"""Empty centroids are re-seeded beside the fullest clusters (bisecting k-means)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from dp_training.dp_kmeans import NoisyCentroids, calibrate_dp_kmeans
from dp_training.federated_kmeans import federated_kmeans
from dp_training.kmeans_reseeding import DEFAULT_SPLIT_OFFSET, split_fullest


def _update(centroids: list[list[float]], kept: list[bool]) -> NoisyCentroids:
    return NoisyCentroids(
        centroids=np.array(centroids, dtype=np.float64),
        corrections=np.arange(len(centroids), dtype=np.float64) / 10,
        kept_previous=np.array(kept),
    )


def test_an_empty_centroid_moves_beside_the_fullest_cluster() -> None:
    # Prepare: centroid 1 holds the most records, centroid 2 none.
    update = _update([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], [False, False, True])
    counts = np.array([20.0, 50.0, 0.3])

    # Execute
    reseeded, moved = split_fullest(update, counts, min_count=2.0, rng=np.random.default_rng(0))

    # Assert: beside the donor at the offset, with its correction; the others unchanged.
    assert moved == 1
    distance = np.linalg.norm(reseeded.centroids[2] - update.centroids[1])
    assert distance == pytest.approx(DEFAULT_SPLIT_OFFSET)
    assert reseeded.corrections[2] == update.corrections[1]
    np.testing.assert_array_equal(reseeded.centroids[:2], update.centroids[:2])
    np.testing.assert_array_equal(reseeded.kept_previous, update.kept_previous)
    np.testing.assert_array_equal(update.centroids[2], [-1.0, 0.0])  # the input is untouched


def test_each_donor_splits_once_a_round_and_only_when_both_halves_can_move() -> None:
    # Prepare: three empty centroids; only centroid 0 holds at least 2 * min_count.
    update = _update([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.5, 0.5]],
                     [False, False, True, True, True])  # fmt: skip
    counts = np.array([9.0, 7.9, 0.0, -1.0, 0.5])

    # Execute
    reseeded, moved = split_fullest(update, counts, min_count=4.0, rng=np.random.default_rng(1))

    # Assert: one split (centroid 2 beside centroid 0); centroids 3 and 4 wait.
    assert moved == 1
    assert np.linalg.norm(reseeded.centroids[2] - update.centroids[0]) < 0.1
    np.testing.assert_array_equal(reseeded.centroids[3:], update.centroids[3:])


def test_bad_counts_or_offset_are_refused() -> None:
    update = _update([[1.0, 0.0], [0.0, 1.0]], [False, True])
    with pytest.raises(ValueError, match="counts"):
        split_fullest(update, np.ones(3), min_count=1.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="offset"):
        split_fullest(update, np.ones(2), min_count=1.0, rng=np.random.default_rng(0), offset=0)


def _blobs(rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """8 separated blobs of 150 vectors (norm about 0.9) dealt over 3 nodes; pooled; truth."""
    centres = np.eye(16)[:8] * 0.9
    labels = np.repeat(np.arange(8), 150)
    vectors = centres[labels] + rng.normal(0, 0.05, size=(len(labels), 16))
    order = rng.permutation(len(labels))
    dealt = [order[i::3] for i in range(3)]
    return (
        [vectors[d] for d in dealt],
        vectors[np.concatenate(dealt)],
        labels[np.concatenate(dealt)],
    )


@pytest.mark.parametrize("epsilon", [None, 8.0])
def test_an_out_of_domain_start_recovers_the_clusters_when_reseeded(epsilon: float | None) -> None:
    # Prepare: six of eight start centroids hold no record (an out-of-domain start).
    nodes, pooled, truth = _blobs(np.random.default_rng(3))
    # Two centroids on blobs 0 and 1; six where no record lies.
    initial = np.vstack([np.eye(16)[:2] * 0.9, -2.0 * np.eye(16)[8:14]])
    calibration = (
        None
        if epsilon is None
        else calibrate_dp_kmeans(epsilon=epsilon, delta=1e-5, rounds=10, shares=3)
    )

    # Execute
    scores = {}
    for reseed in (False, True):
        result = federated_kmeans(
            nodes, initial, rounds=10, calibration=calibration,
            rng=np.random.default_rng(7), reseed=reseed,
        )  # fmt: skip
        scores[reseed] = normalized_mutual_info_score(truth, result.assign(pooled))

    # Assert: without re-seeding two centroids share eight blobs; with it, all are found.
    assert scores[False] < 0.7
    assert scores[True] > 0.9
