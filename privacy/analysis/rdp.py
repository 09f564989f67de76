"""Rényi-DP analysis of the Poisson-subsampled Gaussian mechanism (pure functions).

DP-SGD releases, at every step, a sum of per-record clipped gradients over a batch in
which each record is included independently with probability ``sample_rate`` (Poisson
sampling), plus Gaussian noise of standard deviation ``noise_multiplier`` times the
clipping norm. This module bounds the privacy loss of that mechanism:

- Rényi DP per step, for integer and fractional orders alpha, following Mironov, Talwar
  and Zhang (2019), "Rényi Differential Privacy of the Sampled Gaussian Mechanism",
  arXiv:1908.10530 (Sections 3.2 and 3.3). RDP composes additively over steps.
- Conversion of an RDP curve to (epsilon, delta)-DP, either with Balle, Barthe,
  Gaboardi, Hsu and Sato (2020), "Hypothesis Testing Interpretations and Rényi
  Differential Privacy", AISTATS 2020, arXiv:1905.09982, Theorem 21 (``"balle2020"``, the
  conversion Opacus and Google's dp-accounting use), or with the original bound of
  Mironov (2017), "Rényi Differential Privacy", CSF 2017, arXiv:1702.07476,
  Proposition 3 (``"classic"``, the one TF Privacy's ``compute_dp_sgd_privacy`` used in
  2019).

The neighbouring relation is add/remove one record (the privacy unit of the caller, e.g.
one interaction record on a member node).

All privacy numerics are keyword-only so a noise multiplier is never passed where a
sampling rate was meant. The parameter checks and ``PrivacyParameterError`` are in
:mod:`privacy.analysis.parameters`; composing heterogeneous steps is
:class:`privacy.RDPAccountant`, and choosing a noise multiplier for a target epsilon is
:func:`privacy.noise_multiplier_for`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from privacy.analysis.parameters import (
    PrivacyParameterError,
    check_conversion,
    check_delta,
    check_noise_multiplier,
    check_orders,
    check_sample_rate,
    check_steps,
)

__all__ = [
    "DEFAULT_ORDERS",
    "compute_rdp",
    "rdp_epsilon",
    "rdp_to_epsilon",
]

DEFAULT_ORDERS: Final[tuple[float, ...]] = (
    *(1.0 + x / 10.0 for x in range(1, 101)),
    *(float(a) for a in range(12, 64)),
    128.0,
    256.0,
    512.0,
)
"""RDP orders tried by default: 1.1 to 11.0 in steps of 0.1, 12 to 63, 128, 256, 512.

The same grid as Opacus's ``RDPAccountant.DEFAULT_ALPHAS`` plus three large orders that
matter for very small epsilons (as in Google's dp-accounting).
"""

# Series for fractional orders are summed chunk by chunk until a whole chunk is this many
# nats below the running sum (e^-40 ~ 4e-18 relative), with at most _MAX_TERMS terms.
_SERIES_TOLERANCE_NATS = 40.0
_FIRST_CHUNK = 256
_MAX_TERMS = 1 << 24
# Opacus and dp-accounting stop trusting the Balle et al. bound as alpha -> 1.
_MIN_ORDER_BALLE = 1.01


# ------------------------------------------------------------------- RDP of one step


def _log_binom_abs(alpha: float, k: NDArray[np.float64]) -> NDArray[np.float64]:
    """The log of |C(alpha, k)| for real alpha > 1 and integers 0 <= k (not poles)."""
    log_abs: NDArray[np.float64] = (
        special.gammaln(alpha + 1.0) - special.gammaln(k + 1.0) - special.gammaln(alpha - k + 1.0)
    )
    return log_abs


def _binom_sign(alpha: float, k: NDArray[np.float64]) -> NDArray[np.float64]:
    """The sign of C(alpha, k): that of Gamma(alpha - k + 1), the other factors are > 0."""
    sign: NDArray[np.float64] = special.gammasgn(alpha - k + 1.0)
    return sign


def _log_a_integer(q: float, sigma: float, alpha: int) -> float:
    """The log of A_alpha for integer alpha: Mironov et al. 2019, Section 3.2.

    A_alpha = sum_k C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2)).
    """
    k = np.arange(alpha + 1, dtype=np.float64)
    log_terms = (
        _log_binom_abs(alpha, k)
        + k * math.log(q)
        + (alpha - k) * math.log1p(-q)
        + (k * k - k) / (2.0 * sigma * sigma)
    )
    return float(special.logsumexp(log_terms))


def _log_a_fractional(q: float, sigma: float, alpha: float) -> float:
    """The log of A_alpha for fractional alpha: Mironov et al. 2019, Section 3.3.

    With mu0 = N(0, sigma^2), mu1 = N(1, sigma^2) and mu = (1 - q) mu0 + q mu1, the
    integral A_alpha = E_mu0[(mu / mu0)^alpha] is split at z0, where (1 - q) mu0 = q mu1,
    and each half is expanded with the generalised binomial theorem in the ratio that is
    below one there:

        z <= z0: sum_i C(alpha, i) q^i (1 - q)^(alpha - i) e^((i^2 - i)/(2 s^2)) P[N(i, s^2) <= z0]
        z >  z0: sum_i C(alpha, i) q^(alpha - i) (1 - q)^i e^((j^2 - j)/(2 s^2)) P[N(j, s^2) > z0]

    with j = alpha - i. Terms past i = alpha alternate in sign; all are summed in log space
    with their signs.
    """
    log_q = math.log(q)
    log_1mq = math.log1p(-q)
    two_var = 2.0 * sigma * sigma
    z0 = sigma * sigma * (log_1mq - log_q) + 0.5

    log_sum = -math.inf
    sign_sum = 1.0
    start = 0
    chunk = _FIRST_CHUNK
    while True:
        i = np.arange(start, start + chunk, dtype=np.float64)
        j = alpha - i
        log_binom, sign = _log_binom_abs(alpha, i), _binom_sign(alpha, i)
        below = (
            log_binom
            + i * log_q
            + j * log_1mq
            + (i * i - i) / two_var
            + special.log_ndtr((z0 - i) / sigma)
        )
        above = (
            log_binom
            + j * log_q
            + i * log_1mq
            + (j * j - j) / two_var
            + special.log_ndtr((j - z0) / sigma)
        )
        log_terms = np.concatenate(([log_sum], below, above))
        signs = np.concatenate(([sign_sum], sign, sign))
        chunk_max = float(max(below.max(), above.max()))
        log_sum_new, sign_new = special.logsumexp(log_terms, b=signs, return_sign=True)
        log_sum, sign_sum = float(log_sum_new), float(sign_new)
        start += chunk
        past_alternation = start > alpha + 1.0
        if past_alternation and chunk_max < log_sum - _SERIES_TOLERANCE_NATS:
            break
        if start >= _MAX_TERMS:
            raise PrivacyParameterError(
                f"the RDP series for order {alpha} did not converge in {_MAX_TERMS} terms "
                f"(sample_rate={q}, noise_multiplier={sigma})",
                expected="a sample_rate and noise_multiplier in the usual DP-SGD range",
                fix="use integer orders only, or a larger noise_multiplier",
            )
        chunk *= 2
    if sign_sum <= 0.0:  # A_alpha >= 1 mathematically; only rounding could get here
        return 0.0
    return log_sum


def _rdp_one_step(q: float, sigma: float, alpha: float) -> float:
    """RDP of order alpha of one step of the Poisson-subsampled Gaussian mechanism."""
    if q == 1.0:
        # No subsampling: the Gaussian mechanism, D_alpha(N(1, s^2) || N(0, s^2)).
        return alpha / (2.0 * sigma * sigma)
    if float(alpha).is_integer():
        log_a = _log_a_integer(q, sigma, int(alpha))
    else:
        log_a = _log_a_fractional(q, sigma, alpha)
    return max(log_a, 0.0) / (alpha - 1.0)


def compute_rdp(
    *,
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    orders: Sequence[float] = DEFAULT_ORDERS,
) -> NDArray[np.float64]:
    """RDP curve of ``steps`` compositions of the Poisson-subsampled Gaussian mechanism.

    Implements Mironov, Talwar and Zhang (2019), "Rényi Differential Privacy of the
    Sampled Gaussian Mechanism" (arXiv:1908.10530): the exact binomial sum for integer
    orders (Section 3.2) and the two converging series for fractional orders
    (Section 3.3). Composition over steps is additive (Mironov 2017, Proposition 1).

    Args:
        sample_rate: Probability that a record is in a batch, in (0, 1].
        noise_multiplier: Gaussian noise std divided by the clipping norm, > 0.
        steps: Number of noisy steps, >= 0.
        orders: Rényi orders alpha > 1.

    Returns:
        The RDP epsilon at each order, shape ``(len(orders),)``.

    Raises:
        PrivacyParameterError: A parameter is out of range (also a ``ValueError``).
    """
    q = check_sample_rate(sample_rate)
    sigma = check_noise_multiplier(noise_multiplier)
    n_steps = check_steps(steps)
    alphas = check_orders(orders)
    per_step = np.array([_rdp_one_step(q, sigma, float(a)) for a in alphas], dtype=np.float64)
    return per_step * float(n_steps)


# ------------------------------------------------------------------ RDP -> (eps, delta)


def rdp_to_epsilon(
    *,
    orders: Sequence[float],
    rdp: Sequence[float] | NDArray[np.float64],
    delta: float,
    conversion: str = "balle2020",
) -> tuple[float, float]:
    """Smallest epsilon over the orders such that the RDP curve implies (epsilon, delta)-DP.

    Conversions, for an order alpha with RDP value r:

    - ``"balle2020"``: Balle, Barthe, Gaboardi, Hsu and Sato (2020), "Hypothesis Testing
      Interpretations and Rényi Differential Privacy" (arXiv:1905.09982), Theorem 21:
      ``eps = r + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)``.
      This is the conversion of Opacus and of Google's dp-accounting; orders below 1.01
      are skipped there because the bound is numerically unstable near 1.
    - ``"classic"``: Mironov (2017), "Rényi Differential Privacy" (arXiv:1702.07476),
      Proposition 3: ``eps = r + log(1 / delta) / (alpha - 1)``.

    With either, a curve so small that it already implies (0, delta)-DP (total variation
    bound from the KL divergence: ``1 - exp(-r) <= delta^2``, as in dp-accounting) gives
    epsilon 0, and epsilon is never negative.

    Args:
        orders: Rényi orders alpha > 1.
        rdp: RDP values at those orders, same length.
        delta: Target delta, 0 < delta < 1.
        conversion: ``"balle2020"`` (default) or ``"classic"``.

    Returns:
        ``(epsilon, best_order)``; ``(inf, nan)`` when no order gives a finite epsilon.

    Raises:
        PrivacyParameterError: Bad delta, orders, lengths or conversion name.
    """
    alphas = check_orders(orders)
    values = np.asarray(rdp, dtype=np.float64).reshape(-1)
    if values.shape != alphas.shape:
        raise PrivacyParameterError(
            f"orders and rdp differ in length ({alphas.size} orders, {values.size} RDP values)",
            expected="one RDP value per order",
        )
    if np.any(np.isnan(values)) or np.any(values < 0.0):
        raise PrivacyParameterError(
            "rdp holds NaN or negative values",
            expected="RDP values >= 0 (inf allowed)",
        )
    log_delta = math.log(check_delta(delta))
    check_conversion(conversion)

    with np.errstate(over="ignore", invalid="ignore"):
        if conversion == "balle2020":
            eps = values + np.log1p(-1.0 / alphas) - (log_delta + np.log(alphas)) / (alphas - 1.0)
            eps = np.where(alphas >= _MIN_ORDER_BALLE, eps, np.inf)
        else:
            eps = values - log_delta / (alphas - 1.0)
        # (0, delta)-DP already holds when TV <= sqrt(1 - exp(-KL)) <= delta, KL <= r.
        zero = np.exp(2.0 * log_delta) + np.expm1(-values) >= 0.0
        eps = np.where(zero, 0.0, np.maximum(eps, 0.0))
    if not np.any(np.isfinite(eps)):
        return math.inf, math.nan
    best = int(np.argmin(eps))
    return float(eps[best]), float(alphas[best])


def rdp_epsilon(
    *,
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    conversion: str = "balle2020",
    orders: Sequence[float] = DEFAULT_ORDERS,
) -> float:
    """Epsilon of ``steps`` DP-SGD steps at ``delta``, by RDP (Poisson sampling).

    The RDP bound at every sample rate, full-batch included (where it overstates the
    exact Gaussian-DP epsilon, :func:`privacy.dpsgd_epsilon`).

    Args:
        sample_rate: Probability that a record is in a batch, in (0, 1].
        noise_multiplier: Noise std divided by the clipping norm, > 0.
        steps: Number of noisy steps, >= 0.
        delta: Target delta, 0 < delta < 1.
        conversion: ``"balle2020"`` (default, Balle et al. 2020) or ``"classic"``
            (Mironov 2017).
        orders: Rényi orders to optimise over.

    Returns:
        The epsilon (0.0 for zero steps).

    Raises:
        PrivacyParameterError: A parameter is out of range (also a ``ValueError``).
    """
    check_delta(delta)
    check_conversion(conversion)
    rdp = compute_rdp(
        sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=steps, orders=orders
    )
    epsilon, _ = rdp_to_epsilon(orders=orders, rdp=rdp, delta=delta, conversion=conversion)
    return epsilon
