"""SecAgg+ mode constants and parameters, the quantization bound, and the config check.

Quantization. SecAgg+ clips each weighted value to ``[-clipping_range, clipping_range]``
and rounds it stochastically to one of ``quantization_range`` levels. The weighted
value is ``(n_i / max_weight) * update``, and a node's update is bounded by the
node-level clip norm, so ``clipping_range = update_clip_norm`` (the default when it is
set) never clips. Each node's rounding error is below one step
``2 * clipping_range / quantization_range``, so the unmasked mean differs from the
plaintext FedAvg mean by at most :func:`quantization_tolerance` per value. The sum of
``k`` nodes' quantized values must stay below ``modulus_range``: ``k *
quantization_range < modulus_range`` (2^32 / 2^22 = 1024 nodes per round by default).

``check_config`` rejects a :class:`~federation.run_config.FederationConfig`
that this mode cannot run (another aggregation mode, node-level DP noise, fewer than 2
nodes per round). No Flower import.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedding_core.errors import FedembedError
from federation.run_config import FederationConfig

__all__ = [
    "DEFAULT_MAX_WEIGHT",
    "DEFAULT_MODULUS_RANGE",
    "DEFAULT_QUANTIZATION_RANGE",
    "SECAGGPLUS",
    "UNCLIPPED_CLIPPING_RANGE",
    "SecAggPlusParams",
    "check_config",
    "quantization_tolerance",
]

SECAGGPLUS = "secaggplus"  # the aggregation mode's name (not yet in wire.AggregationMode)
DEFAULT_QUANTIZATION_RANGE = 2**22
DEFAULT_MODULUS_RANGE = 2**32
DEFAULT_MAX_WEIGHT = 1000.0
UNCLIPPED_CLIPPING_RANGE = 1.0  # per-value bound when update-clip-norm is 0


def quantization_tolerance(
    *,
    num_nodes: int,
    total_weight: float,
    max_weight: float,
    clipping_range: float,
    quantization_range: int,
) -> float:
    """Worst-case per-value difference between the SecAgg+ mean and the plaintext mean.

    Every node rounds ``(n_i / max_weight) * u_i`` to a grid of step
    ``2 * clipping_range / quantization_range`` with an error below one step; the sum of
    ``num_nodes`` errors is divided by ``total_weight / max_weight`` (plus a negligible
    term from quantizing the weights themselves, below ``max_weight / (2 *
    quantization_range * min n_i)`` relative).
    """
    step = 2.0 * clipping_range / quantization_range
    return num_nodes * step * max_weight / total_weight


@dataclass(frozen=True)
class SecAggPlusParams:
    """SecAgg+ protocol parameters (see ``flwr.server.workflow.SecAggPlusWorkflow``).

    Attributes:
        num_shares: Shares per node secret (int), or a fraction of the sampled nodes
            (float; 1.0 = every sampled node is every node's neighbour, i.e. SecAgg).
        reconstruction_threshold: Shares needed to reconstruct a secret (int), or a
            fraction of ``num_shares``; tolerates ``num_shares - threshold`` dropouts.
        clipping_range: Per-value clip before quantization; ``None``: the node-level
            ``update_clip_norm`` when set (never clips), else ``UNCLIPPED_CLIPPING_RANGE``.
        quantization_range: Quantization levels.
        modulus_range: Mask modulus (a power of 2 above ``quantization_range``).
        max_weight: Upper bound of a node's record count (the FedAvg weight).
    """

    num_shares: int | float = 1.0
    reconstruction_threshold: int | float = 2.0 / 3.0
    clipping_range: float | None = None
    quantization_range: int = DEFAULT_QUANTIZATION_RANGE
    modulus_range: int = DEFAULT_MODULUS_RANGE
    max_weight: float = DEFAULT_MAX_WEIGHT

    def resolved_clipping_range(self, config: FederationConfig) -> float:
        """The clipping range used for ``config``."""
        if self.clipping_range is not None:
            return self.clipping_range
        if config.update_clip_norm > 0:
            return config.update_clip_norm
        return UNCLIPPED_CLIPPING_RANGE


def check_config(config: FederationConfig) -> None:
    """Refuse a federation config the SecAgg+ ServerApp cannot run (FedembedError)."""
    if config.aggregation != SECAGGPLUS:
        raise FedembedError(
            f"aggregation={config.aggregation!r} given to the SecAgg+ ServerApp",
            expected=f"aggregation={SECAGGPLUS!r}",
            fix="use coordinator.server_app for 'ckks' and 'plaintext'",
        )
    if config.node_noise_multiplier > 0:
        raise FedembedError(
            "node-level DP noise is not available with SecAgg+ aggregation yet",
            expected="node-noise-multiplier = 0 with aggregation='secaggplus'",
            fix="set node-noise-multiplier = 0, or use aggregation='ckks'",
        )
    if config.min_nodes < 2:
        raise FedembedError(
            f"SecAgg+ needs at least 2 nodes per round, min-nodes={config.min_nodes}",
            fix="set min-nodes >= 2 (a sum over one node is that node's update)",
        )
