"""The FedAvg denominator of distributed DP, from a DP-noised slot of the secure sum.

Under distributed DP (``dp-noise-shares = t >= 1``, :mod:`dp_training.distributed_dp`)
node ``i`` takes one full-batch DP-SGD step, so its update is ``-S_i / n_i`` with
``S_i = sum_j clip(g_ij) + N(0, sigma^2 C^2 / t)``: its noisy clipped gradient sum over
its ``n_i`` privacy units, divided by that count. The secure sum must stay *linear* in
each ``S_i``: scaling a node's contribution by ``1 / n_i`` (uniform weights) would leave
one of node ``i``'s records protected by node ``i``'s own noise share only. So each node
encrypts ``S_i`` unscaled, and the coordinator divides the decrypted ``sum_i S_i`` by a
count it may know:

- ``weighting = "declared-counts"``: the sum of the record counts the nodes' operators
  declared public (on the wire anyway; they may exceed the unit counts when a unit
  groups several records, which only rescales the step);
- ``weighting = "uniform"`` (the default): no count is public, so every node appends one
  slot to its encrypted vector, ``s_i = n_i * b + N(0, sigma^2 C^2 / t)``.

Why the slot costs no privacy: per privacy unit the joint vector ``(clipped gradient,
b)`` has norm at most ``sqrt(a^2 + b^2) = C`` when the gradient is clipped to
``a = sqrt(C^2 - b^2)`` (:func:`split_clip`). Adding or removing one unit moves the joint
sum by at most ``C``, the sensitivity the ledger charges, and the sum over ``t`` nodes
carries noise ``sigma * C`` on every coordinate, slot included: the same Gaussian
mechanism (Abadi et al., CCS 2016), the same accounting. The node clips to ``a`` and
gives Opacus the noise multiplier ``sigma_i * C / a`` (std ``sigma_i * C`` as before).
The coordinator's denominator ``max(sum_i s_i / b, nodes)`` (:func:`records_from_slot`)
is post-processing of the released sum. With ``b = 0.1 C`` the gradient clip shrinks
by 0.5% and the count's noise has std ``10 sigma`` units (sum over a round's nodes);
server Adam (:mod:`coordinator.server_adam`) is nearly insensitive to the scale.

The slot is used in CKKS mode only (``t > 1`` needs CKKS; with plaintext or SecAgg+
and ``t <= 1`` every node's update is a DP release of its own and is weighted as the
run says).
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from embedding_core.errors import FedembedError
from federation.round_settings import RoundSettings
from federation.wire import AggregationMode, WeightingMode

__all__ = [
    "SLOT_FRACTION",
    "records_from_slot",
    "slot_value",
    "split_clip",
    "uses_count_slot",
]

SLOT_FRACTION = 0.1
"""``b / C``: the slot's share of the per-unit clip norm."""


def uses_count_slot(settings: RoundSettings) -> bool:
    """Whether the round's secure sum carries the noisy count slot (see the module)."""
    return (
        settings.aggregation == AggregationMode.CKKS
        and settings.dp_noise_shares > 0
        and settings.weighting == WeightingMode.UNIFORM
    )


def _check_clip(clip_norm: float) -> None:
    if not (math.isfinite(clip_norm) and clip_norm > 0):
        raise FedembedError(
            f"per-unit clip norm {clip_norm} is invalid",
            expected="a finite clip norm > 0",
            fix="set max-grad-norm > 0",
        )


def split_clip(clip_norm: float) -> tuple[float, float]:
    """``(a, b)``: the gradient's clip norm and the slot's value, ``a^2 + b^2 = C^2``."""
    _check_clip(clip_norm)
    slot = SLOT_FRACTION * clip_norm
    return math.sqrt(clip_norm**2 - slot**2), slot


def slot_value(
    *,
    units: int,
    clip_norm: float,
    noise_multiplier: float,
    shares: int,
    rng: np.random.Generator | None = None,
) -> float:
    """One node's slot ``units * b + N(0, (noise_multiplier * clip_norm)^2 / shares)``.

    ``noise_multiplier`` is the whole sum's (the ledger's ``sigma``), ``shares`` the
    round's ``dp-noise-shares``; without ``rng`` the noise is seeded from the OS.
    """
    if units < 1:
        raise FedembedError(f"a count slot needs units, got {units}", expected=">= 1 unit")
    if shares < 1:
        raise FedembedError(f"a count slot needs noise shares, got {shares}", expected=">= 1")
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise FedembedError(
            f"noise multiplier {noise_multiplier} is invalid", expected="a finite value > 0"
        )
    _, slot = split_clip(clip_norm)
    generator = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    std = noise_multiplier * clip_norm / math.sqrt(shares)
    return float(units * slot + generator.normal(0.0, std))


def records_from_slot(slot_sum: float, *, clip_norm: float, nodes: int) -> float:
    """The denominator from the decrypted slot sum: at least one unit per answering node."""
    _, slot = split_clip(clip_norm)
    return max(slot_sum / slot, float(max(nodes, 1)))
