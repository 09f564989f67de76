"""``T`` composed Gaussian rounds with ``t`` noise shares: the calibration both statistics share.

Federated k-means (:mod:`dp_training.dp_kmeans`) and the classifier head
(:mod:`dp_training.dp_classifier_head`) release, every round, one node-level vector of
public L2 sensitivity ``s`` plus Gaussian noise of standard deviation ``sigma`` made of
``t`` nodes' shares inside the secure sum. The round's public state (centroids, head)
is the previous round's output, so the rounds are adaptively composed Gaussian
mechanisms: ``T`` rounds are ``sqrt(T) * s / sigma``-GDP (Dong, Roth and Su, "Gaussian
Differential Privacy", JRSS-B 2022, Corollary 3.3), converted exactly to (epsilon,
delta) (:func:`privacy.analysis.gdp.epsilon_for_mu`).

**Shares.** As in distributed DP-SGD (:mod:`dp_training.distributed_dp`, Truex et al.
AISec 2019; Kairouz, Liu and Steinke ICML 2021) each of the ``t`` nodes adds noise of
standard deviation ``sigma / sqrt(t)``; a fellow member knows its own share and faces
``sigma * sqrt(max(t - 1, 1) / t)`` (:mod:`privacy.observers`). The calibration
(:func:`calibrate_gaussian_rounds`) meets the target for the chosen observer, by default
that strictest one; every other observer faces more noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from privacy.analysis.gdp import epsilon_for_mu, mu_for
from privacy.analysis.parameters import PrivacyParameterError, check_delta, check_target_epsilon
from privacy.observers import Observer, noise_ratio

__all__ = [
    "ComposedGaussianRounds",
    "GaussianRounds",
    "calibrate_gaussian_rounds",
    "check_count",
    "check_noise_share",
    "check_positive",
]


def check_positive(value: float, name: str, expected: str) -> float:
    """``value`` as a float if it is a finite number > 0, else a clear error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PrivacyParameterError(
            f"{name} must be a finite number, got {value!r}", expected=expected
        )
    if value <= 0:
        raise PrivacyParameterError(f"{name} must be > 0, got {value!r}", expected=expected)
    return float(value)


def check_count(value: int, name: str, minimum: int, expected: str) -> int:
    """``value`` as an int if it is an integer >= ``minimum``, else a clear error."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise PrivacyParameterError(
            f"{name} must be an integer >= {minimum}, got {value!r}", expected=expected
        )
    return int(value)


def check_noise_share(noise_std_share: float) -> float:
    """A node's noise share as a float if it is finite and >= 0 (0: no DP), else an error."""
    std = float(noise_std_share)
    if not (math.isfinite(std) and std >= 0):
        raise PrivacyParameterError(
            f"noise_std_share must be a finite number >= 0, got {noise_std_share!r}",
            expected="the calibration's noise_std_share (0: no DP)",
        )
    return std


class ComposedGaussianRounds:
    """What any calibration of ``rounds`` composed Gaussian rounds answers (a mixin).

    The calibration dataclasses (:class:`dp_training.dp_kmeans.DPKMeansCalibration`,
    :class:`dp_training.dp_classifier_head.DPClassifierCalibration`) hold these fields.
    """

    delta: float
    rounds: int
    shares: int
    noise_multiplier: float

    def mu_for_observer(self, observer: Observer) -> float:
        """The GDP parameter ``observer`` faces over all rounds."""
        faced = self.noise_multiplier * noise_ratio(observer=observer, shares=self.shares)
        return math.sqrt(self.rounds) / faced

    def epsilon_for_observer(self, observer: Observer) -> float:
        """The epsilon (at ``delta``) that holds for ``observer``."""
        return epsilon_for_mu(mu=self.mu_for_observer(observer), delta=self.delta)


@dataclass(frozen=True)
class GaussianRounds:
    """The checked target and the per-round noise multiplier of ``rounds`` rounds.

    Attributes:
        epsilon, delta: The target, met for ``observer`` after all ``rounds``.
        rounds: ``T``.
        shares: ``t`` (0: each node adds all of the noise, local DP).
        observer: Whose view the target is met for.
        mu: The GDP parameter ``observer`` faces over all rounds (``mu_for`` of the target).
        noise_multiplier: Noise std of the secure sum over the sensitivity, per round.
    """

    epsilon: float
    delta: float
    rounds: int
    shares: int
    observer: Observer
    mu: float
    noise_multiplier: float

    def noise_stds(self, sensitivity: float) -> tuple[float, float]:
        """``(sum_noise_std, noise_std_share)`` for a release of L2 ``sensitivity``.

        The secure sum carries ``noise_multiplier * sensitivity`` per coordinate; each of
        the ``t`` nodes adds that over ``sqrt(t)`` (all of it without shares).
        """
        sum_std = self.noise_multiplier * sensitivity
        return sum_std, sum_std / math.sqrt(self.shares) if self.shares else sum_std


def calibrate_gaussian_rounds(
    *,
    epsilon: float,
    delta: float,
    rounds: int,
    shares: int,
    observer: Observer = Observer.FELLOW_MEMBER,
    what: str = "noisy",
) -> GaussianRounds:
    """The noise multiplier that makes ``rounds`` Gaussian rounds (epsilon, delta)-DP.

    ``observer`` faces ``mu = mu_for(epsilon, delta)`` over ``rounds`` rounds, so its
    per-round noise multiplier is ``sqrt(rounds) / mu``; the secure sum's is that over the
    observer's share of the noise (:func:`privacy.observers.noise_ratio`). ``what`` names
    the rounds in the error message ("the number of {what} rounds").

    Raises:
        PrivacyParameterError: A parameter is out of range.
    """
    epsilon = check_target_epsilon(epsilon, name="epsilon")
    delta = check_delta(delta)
    rounds = check_count(rounds, "rounds", 1, f"the number of {what} rounds, at least 1")
    shares = check_count(shares, "shares", 0, "the nodes adding noise shares (0: each adds all)")
    mu = mu_for(epsilon=epsilon, delta=delta)
    multiplier = (math.sqrt(rounds) / mu) / noise_ratio(observer=observer, shares=shares)
    return GaussianRounds(
        epsilon=epsilon,
        delta=delta,
        rounds=rounds,
        shares=shares,
        observer=Observer(observer),
        mu=mu,
        noise_multiplier=multiplier,
    )
