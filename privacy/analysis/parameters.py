"""Privacy parameters of the analysis: their validation and ``PrivacyParameterError``.

The checks shared by :mod:`privacy.analysis.rdp` (the RDP of the Poisson-subsampled
Gaussian mechanism and its conversion to (epsilon, delta)-DP),
:mod:`privacy.analysis.gdp` (exact Gaussian DP of full-batch DP-SGD) and the
bookkeeping above them (:mod:`privacy.noise_calibration`, the accountants). Each returns
the parameter as a plain Python or NumPy value, or raises ``PrivacyParameterError`` with
what was expected. ``CONVERSIONS`` names the RDP-to-DP conversions: Balle, Barthe,
Gaboardi, Hsu and Sato (2020), "Hypothesis Testing Interpretations and Rényi
Differential Privacy", arXiv:1905.09982, Theorem 21 (``"balle2020"``), and Mironov
(2017), "Rényi Differential Privacy", arXiv:1702.07476, Proposition 3 (``"classic"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from embedding_core.errors import FedembedError

__all__ = [
    "CONVERSIONS",
    "PrivacyParameterError",
    "check_conversion",
    "check_delta",
    "check_noise_multiplier",
    "check_orders",
    "check_sample_rate",
    "check_steps",
    "check_target_epsilon",
]

CONVERSIONS: Final[tuple[str, ...]] = ("balle2020", "classic")
"""Names accepted by ``conversion``: ``"balle2020"`` (default) and ``"classic"``."""


class PrivacyParameterError(FedembedError, ValueError):
    """A privacy parameter is out of range, or a privacy target cannot be reached.

    It is a ``ValueError`` too, so numeric callers can catch it as such.
    """


def check_sample_rate(sample_rate: float) -> float:
    """The Poisson sampling probability as a float in (0, 1]."""
    if not isinstance(sample_rate, int | float) or isinstance(sample_rate, bool):
        raise PrivacyParameterError(
            f"sample_rate must be a number, got {sample_rate!r}",
            expected="a sampling probability in (0, 1], e.g. batch_size / dataset_size",
        )
    rate = float(sample_rate)
    if not (0.0 < rate <= 1.0):
        raise PrivacyParameterError(
            f"sample_rate must lie in (0, 1], got {sample_rate!r}",
            expected="a sampling probability in (0, 1], e.g. batch_size / dataset_size",
            fix="use the expected batch size divided by the number of records",
        )
    return rate


def check_noise_multiplier(noise_multiplier: float) -> float:
    """The noise multiplier (noise std / clipping norm) as a finite float > 0."""
    if not isinstance(noise_multiplier, int | float) or isinstance(noise_multiplier, bool):
        raise PrivacyParameterError(
            f"noise_multiplier must be a number, got {noise_multiplier!r}",
            expected="a finite number > 0 (noise std / clipping norm)",
        )
    sigma = float(noise_multiplier)
    if not (math.isfinite(sigma) and sigma > 0.0):
        raise PrivacyParameterError(
            f"noise_multiplier must be a finite number > 0, got {noise_multiplier!r}",
            expected="a finite number > 0 (noise std / clipping norm); 0 means no privacy at all",
        )
    return sigma


def check_steps(steps: int) -> int:
    """The number of noisy steps as an ``int`` >= 0."""
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise PrivacyParameterError(
            f"steps must be an integer >= 0, got {steps!r}",
            expected="the number of noisy gradient steps as an integer >= 0",
        )
    return int(steps)


def check_delta(delta: float) -> float:
    """The target delta as a float strictly between 0 and 1."""
    if (
        isinstance(delta, bool)
        or not isinstance(delta, int | float)
        or not (0.0 < float(delta) < 1.0)
    ):
        raise PrivacyParameterError(
            f"delta must lie strictly between 0 and 1, got {delta!r}",
            expected="0 < delta < 1, usually well below 1 / number of records (e.g. 1e-5)",
        )
    return float(delta)


def check_target_epsilon(epsilon: float, *, name: str = "target_epsilon") -> float:
    """A privacy budget epsilon as a finite float > 0."""
    if (
        isinstance(epsilon, bool)
        or not isinstance(epsilon, int | float)
        or not (math.isfinite(epsilon) and epsilon > 0)
    ):
        raise PrivacyParameterError(
            f"{name} must be a finite number > 0, got {epsilon!r}",
            expected="the privacy budget epsilon, e.g. 1.0 to 10.0",
        )
    return float(epsilon)


def check_orders(orders: Sequence[float]) -> NDArray[np.float64]:
    """The Rényi orders as a flat float64 array of finite numbers > 1."""
    array = np.asarray(orders, dtype=np.float64).reshape(-1)
    if array.size == 0 or not np.all(np.isfinite(array)) or not np.all(array > 1.0):
        raise PrivacyParameterError(
            f"orders must be a non-empty sequence of finite numbers > 1, got {orders!r}",
            expected="Rényi orders alpha > 1, e.g. DEFAULT_ORDERS",
        )
    return array


def check_conversion(conversion: str) -> str:
    """The RDP-to-DP conversion name, one of ``CONVERSIONS``."""
    if conversion not in CONVERSIONS:
        raise PrivacyParameterError(
            f"unknown RDP-to-DP conversion {conversion!r}",
            expected=f"one of {', '.join(CONVERSIONS)}",
        )
    return conversion
