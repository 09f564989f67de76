"""Stateful RDP bookkeeping of DP-SGD steps (Poisson-subsampled Gaussian mechanism).

``RDPAccountant`` records which mechanisms ran (noise multiplier, sample rate, number of
steps) and composes them: the RDP curve of the whole history is the sum of the curves of
its parts (Mironov 2017, "Rényi Differential Privacy", Proposition 1), converted to
(epsilon, delta) only at the end. It stores mechanism parameters only, never data; the
maths is :mod:`privacy.analysis.rdp`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

from privacy.analysis import DEFAULT_ORDERS, PrivacyParameterError, compute_rdp, rdp_to_epsilon

__all__ = ["RDPAccountant"]

HistoryItem = tuple[float, float, int]
"""One composed mechanism: ``(noise_multiplier, sample_rate, steps)``."""


@lru_cache(maxsize=256)
def _rdp_per_step(
    sample_rate: float, noise_multiplier: float, orders: tuple[float, ...]
) -> tuple[float, ...]:
    """RDP curve of one step, cached: a training run repeats the same parameters."""
    curve = compute_rdp(
        sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=orders
    )
    return tuple(float(v) for v in curve)


class RDPAccountant:
    """Composes Poisson-subsampled Gaussian steps with Rényi DP.

    Consecutive ``step`` calls with the same noise multiplier and sample rate are merged
    into one history item, so a long run keeps a short history.

    Args:
        orders: Rényi orders to track (default ``DEFAULT_ORDERS``).
    """

    mechanism: ClassVar[str] = "rdp"

    def __init__(self, orders: Sequence[float] = DEFAULT_ORDERS) -> None:
        # compute_rdp validates the orders; do it once here so errors surface early.
        compute_rdp(sample_rate=1.0, noise_multiplier=1.0, steps=0, orders=orders)
        self._orders: tuple[float, ...] = tuple(float(a) for a in orders)
        self._history: list[HistoryItem] = []

    @property
    def orders(self) -> tuple[float, ...]:
        """The Rényi orders tracked."""
        return self._orders

    @property
    def history(self) -> list[HistoryItem]:
        """A copy of the composed mechanisms, ``(noise_multiplier, sample_rate, steps)``."""
        return list(self._history)

    def __len__(self) -> int:
        return len(self._history)

    def __repr__(self) -> str:
        return f"RDPAccountant(history={self._history!r})"

    def step(self, *, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Records ``steps`` steps of the mechanism with these parameters.

        Args:
            noise_multiplier: Noise std divided by the clipping norm, > 0.
            sample_rate: Poisson sampling probability, in (0, 1].
            steps: Number of steps, >= 0 (0 records nothing).

        Raises:
            PrivacyParameterError: A parameter is out of range.
        """
        # Validates all three (cheap: steps=0 with a single order).
        compute_rdp(
            sample_rate=sample_rate, noise_multiplier=noise_multiplier, steps=steps, orders=(2.0,)
        )
        sigma, rate, count = float(noise_multiplier), float(sample_rate), int(steps)
        if count == 0:
            return
        if self._history and self._history[-1][:2] == (sigma, rate):
            last = self._history[-1]
            self._history[-1] = (sigma, rate, last[2] + count)
        else:
            self._history.append((sigma, rate, count))

    def get_rdp(self) -> NDArray[np.float64]:
        """RDP curve of the whole history (sum over items), one value per order."""
        total = np.zeros(len(self._orders), dtype=np.float64)
        for sigma, rate, count in self._history:
            total += np.asarray(_rdp_per_step(rate, sigma, self._orders)) * count
        return total

    def get_privacy_spent(
        self, delta: float, *, conversion: str = "balle2020"
    ) -> tuple[float, float]:
        """``(epsilon, best_order)`` of the whole history at ``delta``.

        Args:
            delta: Target delta, 0 < delta < 1.
            conversion: ``"balle2020"`` (default, Balle et al. 2020, Theorem 21) or
                ``"classic"`` (Mironov 2017, Proposition 3).
        """
        return rdp_to_epsilon(
            orders=self._orders, rdp=self.get_rdp(), delta=delta, conversion=conversion
        )

    def get_epsilon(self, delta: float, *, conversion: str = "balle2020") -> float:
        """Epsilon of the whole history at ``delta`` (0.0 for an empty history)."""
        epsilon, _ = self.get_privacy_spent(delta, conversion=conversion)
        return epsilon

    def copy(self) -> Self:
        """An independent accountant of the same class, orders and history."""
        other = type(self).__new__(type(self))
        other._orders = self._orders
        other._history = list(self._history)
        return other

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: mechanism, orders and history."""
        return {
            "mechanism": self.mechanism,
            "orders": list(self._orders),
            "history": [[sigma, rate, count] for sigma, rate, count in self._history],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Self:
        """Rebuilds an accountant from ``to_dict`` output.

        Raises:
            PrivacyParameterError: The state is not an RDP accountant's, or holds
                out-of-range parameters.
        """
        if not isinstance(state, Mapping) or state.get("mechanism") != cls.mechanism:
            found = state.get("mechanism") if isinstance(state, Mapping) else type(state)
            raise PrivacyParameterError(
                f"accountant state is not an RDP accountant's (mechanism {found!r})",
                expected='a mapping from RDPAccountant.to_dict() with mechanism "rdp"',
            )
        orders = state.get("orders", DEFAULT_ORDERS)
        history = state.get("history", [])
        if not isinstance(orders, list | tuple) or not isinstance(history, list | tuple):
            raise PrivacyParameterError(
                "accountant state has malformed orders or history",
                expected="lists: orders of numbers > 1, history of "
                "[noise_multiplier, sample_rate, steps]",
            )
        accountant = cls(orders=orders)
        for item in history:
            if not isinstance(item, list | tuple) or len(item) != 3:
                raise PrivacyParameterError(
                    f"accountant history item {item!r} is malformed",
                    expected="[noise_multiplier, sample_rate, steps]",
                )
            sigma, rate, count = item
            if isinstance(count, float) and math.isfinite(count) and count.is_integer():
                count = int(count)
            accountant.step(noise_multiplier=sigma, sample_rate=rate, steps=count)
        return accountant
