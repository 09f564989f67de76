"""The node's accountant: exact for full-batch DP-SGD, RDP for subsampled DP-SGD.

Every fedembed recipe that a node runs by default uses sample rate 1 (full-batch DP-SGD,
and distributed DP's one step per round). For such a history the privacy curve is known
exactly: ``T`` steps at noise multipliers ``sigma_i`` are ``mu``-GDP with
``mu = sqrt(sum_i 1 / sigma_i^2)`` (:mod:`privacy.analysis.gdp`), and the
(epsilon, delta) read off that curve is the smallest one that holds. RDP's conversion
overstates it by about 7% at 100 steps and epsilon 8 (7.99 instead of 7.43).

As soon as one charge used Poisson subsampling (rate < 1) the whole history is composed
with RDP instead (the base class), which is a valid upper bound for any mix. The state
(mechanism parameters only) is the RDP accountant's; only the conversion differs.

``dpsgd_epsilon`` is the epsilon this accountant gives one DP-SGD run (``steps`` steps
at one noise multiplier and sample rate): what the noise calibration meets and the
trainer (:mod:`dp_training`) reports. A node's ledger composes its whole history with
privacy loss distributions instead (:mod:`privacy.pld_accountant`): the same at sample
rate 1, and tighter than RDP below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from privacy.analysis import DEFAULT_ORDERS, compose_mu, epsilon_for_mu, steps_mu
from privacy.analysis.parameters import check_conversion, check_delta
from privacy.rdp_accountant import RDPAccountant

__all__ = ["FULL_BATCH_RATE", "DPSGDAccountant", "dpsgd_epsilon"]

FULL_BATCH_RATE = 1.0
"""The sample rate at which a step uses every record and GDP accounting is exact."""


class DPSGDAccountant(RDPAccountant):
    """Composes DP-SGD steps: exact Gaussian DP at sample rate 1, RDP otherwise.

    ``step`` and the persisted history are the RDP accountant's. ``get_epsilon`` reads
    the exact GDP curve when every recorded step used sample rate 1 and the RDP bound
    otherwise; ``get_privacy_spent`` is always the RDP bound (with its best order).
    """

    mechanism: ClassVar[str] = "rdp"  # the state is an RDP history; only reading differs

    def is_full_batch(self) -> bool:
        """Whether every recorded step used every record (an empty history does)."""
        return all(rate == FULL_BATCH_RATE for _, rate, _ in self._history)

    def get_mu(self) -> float | None:
        """``mu`` of the whole history if it is full-batch, else ``None``."""
        if not self.is_full_batch():
            return None
        return compose_mu(
            steps_mu(noise_multiplier=sigma, steps=count) for sigma, _, count in self._history
        )

    def get_epsilon(self, delta: float, *, conversion: str = "balle2020") -> float:
        """Epsilon of the whole history at ``delta``: exact when full-batch, else RDP.

        Args:
            delta: Target delta, 0 < delta < 1.
            conversion: The RDP-to-DP conversion used for subsampled histories.
        """
        check_conversion(conversion)
        mu = self.get_mu()
        if mu is None:
            return super().get_epsilon(delta, conversion=conversion)
        return epsilon_for_mu(mu=mu, delta=check_delta(delta))


def dpsgd_epsilon(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    conversion: str = "balle2020",
    orders: Sequence[float] = DEFAULT_ORDERS,
) -> float:
    """Epsilon of ``steps`` DP-SGD steps by the node's accountant: exact at sample rate 1.

    At sample rate 1 the exact Gaussian-DP epsilon (Dong, Roth and Su 2022), below it the
    RDP bound (the same as :func:`privacy.analysis.rdp_epsilon` there).

    Args:
        noise_multiplier: Noise std divided by the clipping norm, > 0.
        sample_rate: Probability that a record is in a batch, in (0, 1].
        steps: Number of noisy steps, >= 0.
        delta: Target delta, 0 < delta < 1.
        conversion: The RDP-to-DP conversion used below sample rate 1.
        orders: Rényi orders to optimise over below sample rate 1.

    Returns:
        The epsilon (0.0 for zero steps).

    Raises:
        PrivacyParameterError: A parameter is out of range (also a ``ValueError``).
    """
    accountant = DPSGDAccountant(orders=orders)
    accountant.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps)
    return accountant.get_epsilon(delta, conversion=conversion)
