"""The calibration of T composed Gaussian rounds with t noise shares (k-means, classifier)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from dp_training.dp_classifier_head import calibrate_dp_classifier
from dp_training.dp_kmeans import calibrate_dp_kmeans
from dp_training.gaussian_rounds import (
    calibrate_gaussian_rounds,
    check_count,
    check_noise_share,
    check_positive,
)
from privacy.analysis.gdp import compose_mu, epsilon_for_mu
from privacy.analysis.parameters import PrivacyParameterError
from privacy.observers import Observer


@pytest.mark.parametrize(("epsilon", "rounds", "shares"), [(8.0, 10, 3), (1.0, 3, 2), (2.0, 5, 0)])
def test_the_rounds_compose_exactly_to_the_target_for_a_fellow_member(
    epsilon: float, rounds: int, shares: int
) -> None:
    # Prepare: sensitivity 1.3; a fellow member knows its own share, so faces t - 1 of t
    # (all of the noise without shares: it adds none of the others').
    core = calibrate_gaussian_rounds(epsilon=epsilon, delta=1e-5, rounds=rounds, shares=shares)
    sum_std, share_std = core.noise_stds(1.3)
    member_std = sum_std * math.sqrt((shares - 1) / shares) if shares > 1 else sum_std

    # Execute: compose the rounds' Gaussian mechanisms independently of the module.
    mu = compose_mu([1.3 / member_std] * rounds)

    # Assert
    assert epsilon_for_mu(mu=mu, delta=1e-5) == pytest.approx(epsilon, rel=1e-6)
    assert share_std == pytest.approx(sum_std / math.sqrt(shares) if shares else sum_std)
    assert core.observer == Observer.FELLOW_MEMBER


def test_both_tasks_calibrate_through_it() -> None:
    # Prepare
    core = calibrate_gaussian_rounds(epsilon=4.0, delta=1e-5, rounds=6, shares=3)

    # Execute
    kmeans = calibrate_dp_kmeans(epsilon=4.0, delta=1e-5, rounds=6, shares=3, count_weight=0.3)
    head = calibrate_dp_classifier(
        epsilon=4.0, delta=1e-5, rounds=6, shares=3, clip=2.0, count_weight=0.6
    )

    # Assert: one multiplier; each task's noise is it times the task's sensitivity.
    for calibration, sensitivity in ((kmeans, math.sqrt(1.09)), (head, math.sqrt(4.36))):
        assert calibration.noise_multiplier == core.noise_multiplier
        assert calibration.mu == core.mu
        assert calibration.sensitivity == pytest.approx(sensitivity)
        assert (calibration.sum_noise_std, calibration.noise_std_share) == pytest.approx(
            core.noise_stds(sensitivity)
        )
        assert calibration.epsilon_for_observer(Observer.FELLOW_MEMBER) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda: check_positive(0.0, "clip", "C > 0"), "clip must be > 0"),
        (lambda: check_positive(math.inf, "clip", "C > 0"), "clip must be a finite number"),
        (lambda: check_positive(True, "clip", "C > 0"), "clip must be a finite number"),
        (lambda: check_count(0, "rounds", 1, "at least 1"), "rounds must be an integer >= 1"),
        (lambda: check_count(2.0, "rounds", 1, "at least 1"), "rounds must be an integer >= 1"),
        (lambda: check_noise_share(-0.1), "noise_std_share must be a finite number >= 0"),
        (
            lambda: calibrate_gaussian_rounds(
                epsilon=1.0, delta=1e-5, rounds=0, shares=3, what="noisy k-means"
            ),
            "rounds must be an integer >= 1",
        ),
    ],
)
def test_bad_parameters_are_refused_with_what_was_expected(
    check: Callable[[], object], message: str
) -> None:
    with pytest.raises(PrivacyParameterError, match=message):
        check()


def test_good_parameters_come_back_as_numbers() -> None:
    assert check_positive(2, "clip", "C > 0") == 2.0
    assert check_count(np.int64(3), "shares", 0, "t >= 0") == 3
    assert check_noise_share(0.0) == 0.0
