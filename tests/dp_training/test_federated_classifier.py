"""The federated classifier head in process: non-DP close to central, DP above chance."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.linear_classifier import LinearClassifier
from dp_training.dp_classifier_head import calibrate_dp_classifier
from dp_training.federated_classifier import federated_classifier
from privacy.analysis import PrivacyParameterError

DIM, K, NODES, PER_NODE = 32, 4, 3, 200
LABELS = ("a", "b", "c", "d")


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(0, K, n)
    x = centres[y] * 1.5 + rng.normal(size=(n, DIM)) / np.sqrt(DIM)
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def _nodes() -> list[tuple[np.ndarray, np.ndarray]]:
    x, y = _data(0, NODES * PER_NODE)
    return [(x[i::NODES], y[i::NODES]) for i in range(NODES)]


def test_federated_training_without_noise_matches_the_central_classifier() -> None:
    # Prepare
    nodes = _nodes()
    test_x, test_y = _data(0, 2000)  # same centres (seed 0), fresh draws beyond the nodes'
    test_x, test_y = test_x[NODES * PER_NODE :], test_y[NODES * PER_NODE :]

    # Execute
    head = federated_classifier(
        nodes, LABELS, rounds=30, calibration=None, rng=np.random.default_rng(0)
    )

    # Assert: within 3 points of scikit-learn-equivalent logistic regression.
    pooled_x = np.vstack([x for x, _ in nodes])
    pooled_y = [LABELS[i] for _, y in nodes for i in y]
    central = LinearClassifier().fit(pooled_x, pooled_y)
    truth = [LABELS[i] for i in test_y]
    federated = np.mean(np.array(head.predict(test_x)) == truth)
    reference = np.mean(np.array(central.predict(test_x)) == truth)
    assert federated >= reference - 0.03


def test_dp_training_at_a_moderate_epsilon_stays_well_above_chance() -> None:
    # Prepare
    nodes = _nodes()
    test_x, test_y = _data(0, 1600)
    test_x, test_y = test_x[NODES * PER_NODE :], test_y[NODES * PER_NODE :]
    calibration = calibrate_dp_classifier(epsilon=4.0, delta=1e-5, rounds=10, shares=NODES)

    # Execute: three seeds of noise.
    accuracies = [
        np.mean(
            np.array(
                federated_classifier(
                    nodes,
                    LABELS,
                    rounds=10,
                    calibration=calibration,
                    rng=np.random.default_rng(seed),
                ).predict(test_x)
            )
            == [LABELS[i] for i in test_y]
        )
        for seed in range(3)
    ]

    # Assert: chance is 0.25.
    assert min(accuracies) >= 0.7


def test_a_calibration_for_another_run_is_refused() -> None:
    calibration = calibrate_dp_classifier(epsilon=4.0, delta=1e-5, rounds=5, shares=NODES)
    with pytest.raises(PrivacyParameterError, match="calibration"):
        federated_classifier(
            _nodes(), LABELS, rounds=6, calibration=calibration, rng=np.random.default_rng(0)
        )
