"""Gaussian differential privacy of full-batch DP-SGD: exact accounting (pure functions).

When every step of DP-SGD uses every record (sample rate 1: full-batch gradient descent,
and distributed DP's one noisy step per round), each step is a Gaussian mechanism on a
sum of per-record gradients clipped to norm ``C``, with noise of standard deviation
``noise_multiplier * C``. Under add/remove of one record its sensitivity is ``C``, so one
step is exactly ``mu``-GDP with ``mu = 1 / noise_multiplier``, and ``T`` adaptively
composed steps are exactly ``sqrt(T) / noise_multiplier``-GDP (Dong, Roth and Su,
"Gaussian Differential Privacy", JRSS-B 2022, arXiv:1905.02383, Theorem 3.2 and
Corollary 3.3). A ``mu``-GDP mechanism is (epsilon, delta(epsilon))-DP for every epsilon
>= 0 with

    delta(epsilon) = Phi(-epsilon / mu + mu / 2) - e^epsilon Phi(-epsilon / mu - mu / 2)

and no smaller delta (Dong, Roth and Su, Corollary 2.13; the same curve as the analytic
Gaussian mechanism of Balle and Wang, ICML 2018, Theorem 8). So for full-batch histories
this conversion is tight, where RDP's conversion (:mod:`privacy.analysis.rdp`) is
an upper bound: at 100 steps, epsilon 8 and delta 1e-5 it needs noise multiplier 6.38,
the exact curve 6.00.

The same Gaussian-DP parameter bounds any membership-inference attack: its ROC curve
lies under ``TPR = Phi(Phi^-1(FPR) + mu)``, so its AUC is at most ``Phi(mu / sqrt(2))``
(:func:`auc_bound`). It does not hold for Poisson subsampling with rate < 1, where only
RDP (or PLD) accounting is exact enough; callers fall back to RDP there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from scipy import optimize, special

from privacy.analysis.parameters import (
    PrivacyParameterError,
    check_delta,
    check_noise_multiplier,
    check_steps,
    check_target_epsilon,
)

__all__ = [
    "auc_bound",
    "compose_mu",
    "delta_for",
    "epsilon_for_auc",
    "epsilon_for_mu",
    "mu_for",
    "mu_for_auc",
    "steps_mu",
]

_EPSILON_CEILING = 1.0e4


def _check_mu(mu: float) -> float:
    if isinstance(mu, bool) or not isinstance(mu, int | float) or not math.isfinite(mu) or mu < 0:
        raise PrivacyParameterError(
            f"mu must be a finite number >= 0, got {mu!r}",
            expected="the Gaussian-DP parameter, sqrt(steps) / noise_multiplier",
        )
    return float(mu)


def steps_mu(*, noise_multiplier: float, steps: int) -> float:
    """``mu`` of ``steps`` full-batch Gaussian steps: ``sqrt(steps) / noise_multiplier``."""
    return math.sqrt(check_steps(steps)) / check_noise_multiplier(noise_multiplier)


def compose_mu(mus: Iterable[float]) -> float:
    """``mu`` of adaptively composed GDP mechanisms: the root of the sum of squares."""
    return math.sqrt(sum(_check_mu(mu) ** 2 for mu in mus))


def delta_for(*, mu: float, epsilon: float) -> float:
    """The smallest delta at which a ``mu``-GDP mechanism is (epsilon, delta)-DP.

    Computed in log space (``log_ndtr``) so that large ``epsilon / mu`` neither overflows
    ``e^epsilon`` nor loses the difference to cancellation.
    """
    mu = _check_mu(mu)
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not epsilon >= 0:
        raise PrivacyParameterError(
            f"epsilon must be a number >= 0, got {epsilon!r}",
            expected="a privacy level epsilon >= 0",
        )
    if mu == 0:
        return 0.0
    eps = float(epsilon)
    log_first = float(special.log_ndtr(-eps / mu + mu / 2))
    log_second = eps + float(special.log_ndtr(-eps / mu - mu / 2))
    if log_first == -math.inf:
        return 0.0
    # first - second = first * (1 - e^(log_second - log_first)); the ratio is < 1.
    return max(0.0, -math.exp(log_first) * math.expm1(log_second - log_first))


def epsilon_for_mu(*, mu: float, delta: float) -> float:
    """The smallest epsilon at which a ``mu``-GDP mechanism is (epsilon, delta)-DP.

    ``delta_for`` decreases in epsilon, so this is its inverse by root finding; 0.0 when
    even epsilon 0 meets ``delta``.
    """
    mu = _check_mu(mu)
    delta = check_delta(delta)
    if delta_for(mu=mu, epsilon=0.0) <= delta:
        return 0.0
    high = max(1.0, mu * mu)
    while delta_for(mu=mu, epsilon=high) > delta:
        if high >= _EPSILON_CEILING:
            raise PrivacyParameterError(
                f"mu {mu:g} is not (epsilon, {delta:g})-DP for any epsilon up to "
                f"{_EPSILON_CEILING:g}",
                expected="a mechanism with finite noise",
            )
        high *= 2.0
    root: float = optimize.brentq(
        lambda eps: delta_for(mu=mu, epsilon=eps) - delta, 0.0, high, xtol=1e-12, rtol=1e-12
    )
    return root


def mu_for(*, epsilon: float, delta: float) -> float:
    """The largest ``mu`` whose mechanism is (epsilon, delta)-DP (calibration)."""
    epsilon = check_target_epsilon(epsilon, name="epsilon")
    delta = check_delta(delta)
    high = 1.0
    while delta_for(mu=high, epsilon=epsilon) < delta:
        high *= 2.0
    root: float = optimize.brentq(
        lambda mu: delta_for(mu=mu, epsilon=epsilon) - delta, 0.0, high, xtol=1e-14, rtol=1e-14
    )
    return root


def auc_bound(*, mu: float) -> float:
    """Largest AUC any membership-inference attack reaches on a ``mu``-GDP mechanism."""
    return float(special.ndtr(_check_mu(mu) / math.sqrt(2.0)))


def mu_for_auc(*, max_auc: float) -> float:
    """The largest ``mu`` whose AUC bound is ``max_auc``: ``sqrt(2) Phi^-1(max_auc)``.

    The inverse of :func:`auc_bound`: training at this ``mu`` or below proves that no
    membership-inference attack reaches an AUC above ``max_auc``, in expectation.
    """
    if isinstance(max_auc, bool) or not isinstance(max_auc, int | float) or not 0.5 < max_auc < 1.0:
        raise PrivacyParameterError(
            f"max_auc must be a number in (0.5, 1), got {max_auc!r}",
            expected="an attack AUC between 0.5 (guessing) and 1 (certainty), e.g. 0.55",
        )
    return math.sqrt(2.0) * float(special.ndtri(float(max_auc)))


def epsilon_for_auc(*, max_auc: float, delta: float) -> float:
    """The largest epsilon (at ``delta``) whose full-batch recipe keeps AUC <= ``max_auc``.

    For full-batch DP-SGD the guarantee is exactly ``mu``-GDP, and calibration on the
    exact curve (:func:`mu_for`) maps a target epsilon back to that ``mu``; so a run whose
    target epsilon is this value has ``mu <= mu_for_auc(max_auc)`` and every attack's AUC
    is at most ``max_auc``. A Poisson-sampled recipe (rate < 1) is not covered.
    """
    return epsilon_for_mu(mu=mu_for_auc(max_auc=max_auc), delta=delta)
