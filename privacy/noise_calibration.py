"""Noise calibration: the smallest noise multiplier that meets a privacy target.

``noise_multiplier_for`` bisects on the noise multiplier of DP-SGD (Poisson-subsampled
Gaussian mechanism), like Opacus's ``get_noise_multiplier``, with the epsilon the node's
ledger will charge (:func:`privacy.dpsgd_epsilon`):
at sample rate 1 the exact Gaussian-DP curve (Dong, Roth and Su 2022,
:mod:`privacy.analysis.gdp`); below it the RDP of Mironov, Talwar and Zhang
(2019), "Rényi Differential Privacy of the Sampled Gaussian Mechanism", arXiv:1908.10530,
converted to (epsilon, delta)-DP with Balle et al. (2020), arXiv:1905.09982, Theorem 21
(default) or Mironov (2017), arXiv:1702.07476, Proposition 3. ``exact_full_batch=False``
uses RDP at every rate (what Opacus does).

All privacy numerics are keyword-only so a noise multiplier is never passed where a
sampling rate was meant.
"""

from __future__ import annotations

from collections.abc import Sequence

from privacy.analysis import DEFAULT_ORDERS, PrivacyParameterError, rdp_epsilon
from privacy.analysis.parameters import (
    check_conversion,
    check_delta,
    check_sample_rate,
    check_steps,
    check_target_epsilon,
)
from privacy.dpsgd_accountant import dpsgd_epsilon

__all__ = ["noise_multiplier_for"]

_MAX_NOISE_MULTIPLIER = 1.0e4


def noise_multiplier_for(
    *,
    target_epsilon: float,
    target_delta: float,
    sample_rate: float,
    steps: int,
    tolerance: float = 0.01,
    conversion: str = "balle2020",
    orders: Sequence[float] = DEFAULT_ORDERS,
    exact_full_batch: bool = True,
) -> float:
    """Smallest noise multiplier (within the tolerance) that keeps epsilon <= target.

    Bisection on the noise multiplier, like Opacus's ``get_noise_multiplier``: the
    returned value ``sigma`` satisfies ``target_epsilon - tolerance <= epsilon(sigma)
    <= target_epsilon``, where ``epsilon`` is :func:`privacy.dpsgd_epsilon` (or
    :func:`privacy.analysis.rdp_epsilon` with ``exact_full_batch=False``).

    Args:
        target_epsilon: Epsilon not to exceed, > 0.
        target_delta: Delta, 0 < delta < 1.
        sample_rate: Probability that a record is in a batch, in (0, 1].
        steps: Number of noisy steps, >= 1.
        tolerance: Allowed slack below the target epsilon, > 0.
        conversion: ``"balle2020"`` (default) or ``"classic"``.
        orders: Rényi orders to optimise over.
        exact_full_batch: At sample rate 1, calibrate on the exact GDP curve (the
            ledger's accounting) rather than on RDP's upper bound.

    Returns:
        The noise multiplier.

    Raises:
        PrivacyParameterError: A parameter is out of range, or the target cannot be
            reached with any noise multiplier up to 1e4 (also a ``ValueError``).
    """
    check_target_epsilon(target_epsilon)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not tolerance > 0:
        raise PrivacyParameterError(
            f"tolerance must be a number > 0, got {tolerance!r}",
            expected="an epsilon tolerance such as 0.01",
        )
    check_delta(target_delta)
    check_sample_rate(sample_rate)
    if check_steps(steps) < 1:
        raise PrivacyParameterError(
            "steps must be at least 1 to choose a noise multiplier",
            expected="the number of noisy steps the training will run, >= 1",
        )
    check_conversion(conversion)

    epsilon_of = dpsgd_epsilon if exact_full_batch else rdp_epsilon

    def eps(sigma: float) -> float:
        return epsilon_of(
            sample_rate=sample_rate,
            noise_multiplier=sigma,
            steps=steps,
            delta=target_delta,
            conversion=conversion,
            orders=orders,
        )

    low, high = 0.0, 1.0
    eps_high = eps(high)
    while eps_high > target_epsilon:
        if high >= _MAX_NOISE_MULTIPLIER:
            raise PrivacyParameterError(
                f"target epsilon {target_epsilon} at delta {target_delta} cannot be reached: "
                f"even noise_multiplier={high:g} gives epsilon {eps_high:.4g} over {steps} "
                f"steps at sample_rate {sample_rate}",
                expected="a target epsilon reachable with a finite noise multiplier",
                fix="raise target_epsilon or target_delta, or train fewer steps or with a "
                "smaller sample_rate",
            )
        low, high = high, min(2.0 * high, _MAX_NOISE_MULTIPLIER)
        eps_high = eps(high)
    while target_epsilon - eps_high > tolerance and high - low > 1e-9 * high:
        middle = 0.5 * (low + high)
        eps_middle = eps(middle)
        if eps_middle <= target_epsilon:
            high, eps_high = middle, eps_middle
        else:
            low = middle
    return high
