"""The DP classifier head: gradients, clipping, calibration, node and coordinator steps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_training.dp_classifier_head import (
    HeadState,
    calibrate_dp_classifier,
    classifier_sensitivity,
    clipped_gradient_sum,
    label_targets,
    noisy_node_gradient,
    per_record_gradients,
    update_head,
)
from privacy.analysis import PrivacyParameterError
from privacy.observers import Observer

DIM, K = 8, 3


def _data(seed: int, n: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, rng.integers(0, K, n), rng.normal(size=(K, DIM)), rng.normal(size=K)


def _loss(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: int) -> float:
    scores = w @ x + b
    return float(np.log(np.sum(np.exp(scores - scores.max()))) + scores.max() - scores[y])


def test_per_record_gradients_match_finite_differences() -> None:
    # Prepare
    x, y, w, b = _data(0, n=4)
    step = 1e-6

    # Execute
    gradients = per_record_gradients(w, b, x, y)

    # Assert: every coordinate of every record's [dW | db] against a central difference.
    for i in range(len(y)):
        numeric = np.zeros((K, DIM + 1))
        for j in range(K):
            for d in range(DIM + 1):
                up, down = w.copy(), w.copy()
                bu, bd = b.copy(), b.copy()
                if d < DIM:
                    up[j, d] += step
                    down[j, d] -= step
                else:
                    bu[j] += step
                    bd[j] -= step
                numeric[j, d] = (_loss(up, bu, x[i], y[i]) - _loss(down, bd, x[i], y[i])) / (
                    2 * step
                )
        np.testing.assert_allclose(gradients[i], numeric, atol=1e-6)


@given(
    seed=st.integers(0, 10_000),
    clip=st.floats(0.01, 5.0),
    scale=st.floats(0.1, 20.0),
)
def test_the_clipped_sum_is_the_sum_of_records_each_clipped_to_the_bound(
    seed: int, clip: float, scale: float
) -> None:
    # Prepare: vectors of any length, weights of any size.
    x, y, w, b = _data(seed)
    x = x * scale

    # Execute
    total = clipped_gradient_sum(w * scale, b, x, y, clip=clip)

    # Assert: each record's clipped gradient is within the bound, and they sum to the total.
    each = per_record_gradients(w * scale, b, x, y)
    norms = np.linalg.norm(each.reshape(len(y), -1), axis=1)
    factor = np.where(norms > clip, clip / np.maximum(norms, clip), 1.0)
    clipped = each * factor[:, None, None]
    assert np.all(np.linalg.norm(clipped.reshape(len(y), -1), axis=1) <= clip * (1 + 1e-9))
    np.testing.assert_allclose(total, clipped.sum(axis=0), atol=1e-9)
    # One record more moves the sum by at most the clip (the sensitivity's first term).
    extra = clipped_gradient_sum(w * scale, b, x[:-1], y[:-1], clip=clip)
    assert np.linalg.norm(total - extra) <= clip * (1 + 1e-9)


@pytest.mark.parametrize(("epsilon", "rounds", "shares"), [(1.0, 30, 3), (8.0, 10, 5), (4, 1, 0)])
def test_the_calibration_charges_exactly_the_target_for_a_fellow_member(
    epsilon: float, rounds: int, shares: int
) -> None:
    calibration = calibrate_dp_classifier(
        epsilon=epsilon, delta=1e-5, rounds=rounds, shares=shares, clip=2.0, count_weight=0.6
    )

    assert calibration.sensitivity == pytest.approx(math.sqrt(4.0 + 0.36))
    assert calibration.epsilon_for_observer(Observer.FELLOW_MEMBER) == pytest.approx(epsilon)
    assert calibration.sum_noise_std == pytest.approx(
        calibration.noise_multiplier * calibration.sensitivity
    )
    assert calibration.count_noise_std == pytest.approx(calibration.sum_noise_std / 0.6)
    if shares > 1:  # the coordinator faces the whole sum's noise: less than the target
        assert calibration.epsilon_for_observer(Observer.COORDINATOR) < epsilon
        assert calibration.noise_std_share == pytest.approx(
            calibration.sum_noise_std / math.sqrt(shares)
        )


def test_bad_privacy_parameters_are_refused() -> None:
    with pytest.raises(PrivacyParameterError, match="clip"):
        classifier_sensitivity(0.0)
    with pytest.raises(PrivacyParameterError, match="rounds"):
        calibrate_dp_classifier(epsilon=1.0, delta=1e-5, rounds=0, shares=3)


def test_the_node_adds_its_share_of_noise_to_gradient_and_count() -> None:
    # Prepare
    x, y, w, b = _data(1, n=50)
    exact = clipped_gradient_sum(w, b, x, y, clip=1.0)

    # Execute: many noisy releases of the same records.
    rng = np.random.default_rng(7)
    noisy = [
        noisy_node_gradient(x, y, w, b, clip=1.0, noise_std_share=0.5, rng=rng, count_weight=0.25)
        for _ in range(400)
    ]
    plain = noisy_node_gradient(x, y, w, b, clip=1.0, noise_std_share=0.0, rng=rng)

    # Assert: zero noise is the exact statistic; the noise has the calibrated stds.
    np.testing.assert_allclose(plain.gradient, exact)
    assert plain.count == 50.0
    residual = np.stack([n.gradient for n in noisy]) - exact
    assert np.std(residual) == pytest.approx(0.5, rel=0.05)
    assert np.std([n.count for n in noisy]) == pytest.approx(0.5 / 0.25, rel=0.15)
    assert noisy[0].vector(0.25)[-1] == pytest.approx(0.25 * noisy[0].count)


def test_the_coordinator_step_divides_by_the_mean_of_the_noisy_counts() -> None:
    # Prepare
    state = HeadState.zeros(K, DIM)
    gradient = np.ones((K, DIM + 1))

    # Execute: two rounds with counts 90 and 110 (mean 100).
    first = update_head(state, gradient, 90.0, learning_rate=2.0, momentum=0.0)
    second = update_head(first, gradient, 110.0, learning_rate=2.0, momentum=0.0)

    # Assert
    np.testing.assert_allclose(first.weights, -2.0 / 90.0)
    np.testing.assert_allclose(second.bias, -2.0 / 90.0 - 2.0 / 100.0)
    assert second.normaliser == pytest.approx(100.0)
    # A negative noisy count never flips the step: the normaliser is at least 1.
    flipped = update_head(state, gradient, -5.0, learning_rate=1.0, momentum=0.0)
    np.testing.assert_allclose(flipped.weights, -1.0)


def test_labels_outside_the_public_set_are_skipped() -> None:
    targets, kept = label_targets(["b", "x", "a", "b"], ("a", "b"))

    assert targets.tolist() == [1, 0, 1]
    assert kept.tolist() == [True, False, True, True]
