"""The in-process federated k-means loop: exact without noise, useful with it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from analytics.kmeans import assign, centroid_sums, centroids_from
from dp_training.dp_kmeans import calibrate_dp_kmeans
from dp_training.federated_kmeans import federated_kmeans
from privacy.analysis import PrivacyParameterError

DIM, K, NODES = 16, 4, 3


def _unit(raw: np.ndarray) -> np.ndarray:
    return np.asarray(raw / np.linalg.norm(raw, axis=1, keepdims=True))


def _nodes(
    seed: int, per_node: int, spread: float = 1.0
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Each node's unit vectors around K directions, their clusters, and the directions."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(K, DIM)))
    vectors, labels = [], []
    for _ in range(NODES):
        label = rng.integers(0, K, per_node)
        vectors.append(_unit(3.0 * centres[label] + spread * rng.normal(size=(per_node, DIM))))
        labels.append(label)
    return vectors, labels, centres


def test_federated_kmeans_without_noise_is_lloyd_on_the_pooled_records() -> None:
    # Prepare
    nodes, _, _ = _nodes(seed=3, per_node=50)
    initial = _unit(np.random.default_rng(4).normal(size=(K, DIM)))
    pooled = np.vstack(nodes)
    expected = initial
    for _ in range(4):
        expected = centroids_from(*centroid_sums(pooled, expected), expected)

    # Execute
    result = federated_kmeans(
        nodes, initial, rounds=4, calibration=None, rng=np.random.default_rng(0)
    )

    # Assert
    np.testing.assert_allclose(result.centroids, expected, atol=1e-12)
    np.testing.assert_array_equal(result.corrections, np.zeros(K))


def test_federated_kmeans_refuses_a_calibration_for_another_run() -> None:
    calibration = calibrate_dp_kmeans(epsilon=8.0, delta=1e-5, rounds=5, shares=NODES)
    with pytest.raises(PrivacyParameterError, match="calibration"):
        federated_kmeans(
            _nodes(0, 20)[0], _unit(np.random.default_rng(0).normal(size=(K, DIM))), rounds=3,
            calibration=calibration, rng=np.random.default_rng(0),
        )  # fmt: skip


def test_dp_federated_kmeans_finds_well_separated_clusters_at_epsilon_8() -> None:
    # Prepare: a public initialisation far from the true directions.
    nodes, labels, centres = _nodes(seed=13, per_node=300, spread=0.5)
    public = _unit(centres + 1.2 * np.random.default_rng(14).normal(size=(K, DIM)))
    truth = np.concatenate(labels)
    calibration = calibrate_dp_kmeans(epsilon=8.0, delta=1e-5, rounds=3, shares=NODES)

    # Execute
    result = federated_kmeans(
        nodes, public, rounds=3, calibration=calibration, rng=np.random.default_rng(15)
    )

    # Assert: the noisy rounds move the map from a poor start to the true clusters.
    assert adjusted_rand_score(truth, assign(np.vstack(nodes), public)[0]) < 0.5
    found = np.concatenate([result.assign(v) for v in nodes])
    assert adjusted_rand_score(truth, found) > 0.95
    assert result.kept_previous == (0, 0, 0)
    assert np.all(result.corrections > 0)
