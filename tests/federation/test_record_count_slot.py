"""The DP-noised count slot of the distributed-DP secure sum: sensitivity, noise, estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embedding_core.errors import FedembedError
from federation.record_count_slot import (
    SLOT_FRACTION,
    records_from_slot,
    slot_value,
    split_clip,
    uses_count_slot,
)
from federation.round_settings import RoundSettings


@pytest.mark.parametrize("clip_norm", [0.1, 1.0, 7.5])
def test_a_units_joint_contribution_stays_within_the_clip_norm(clip_norm: float) -> None:
    # Prepare: gradients far above and below the clip, clipped to a as Opacus does.
    rng = np.random.default_rng(0)
    grad_clip, slot = split_clip(clip_norm)
    gradients = rng.normal(size=(500, 64)) * rng.choice([1e-3, 1.0, 1e3], size=(500, 1))
    norms = np.linalg.norm(gradients, axis=1, keepdims=True)
    clipped = gradients * np.minimum(1.0, grad_clip / norms)
    # Execute: the per-unit vector (clipped gradient, b) that enters the joint sum.
    joint = np.hstack([clipped, np.full((500, 1), slot)])
    # Assert: sensitivity C, as the ledger charges; the slot takes b = 0.1 C.
    assert np.linalg.norm(joint, axis=1).max() <= clip_norm * (1 + 1e-12)
    assert slot == pytest.approx(SLOT_FRACTION * clip_norm)
    assert grad_clip**2 + slot**2 == pytest.approx(clip_norm**2)


def test_t_slots_sum_to_the_count_with_the_whole_noise() -> None:
    # Prepare: three nodes, each adding its share of sigma * C.
    rng = np.random.default_rng(7)
    units, sigma, clip, shares, trials = (50, 80, 120), 1.3, 2.0, 3, 4000
    # Execute
    sums = np.array(
        [
            sum(
                slot_value(units=n, clip_norm=clip, noise_multiplier=sigma, shares=shares, rng=rng)
                for n in units
            )
            for _ in range(trials)
        ]
    )
    # Assert: mean sum(n) * b, standard deviation sigma * C (5 standard errors of margin).
    b = SLOT_FRACTION * clip
    assert abs(sums.mean() - sum(units) * b) < 5 * sigma * clip / math.sqrt(trials)
    assert sums.std() == pytest.approx(sigma * clip, rel=0.06)


def test_the_denominator_estimates_the_count_and_never_falls_below_the_nodes() -> None:
    b = SLOT_FRACTION * 1.0
    assert records_from_slot(250 * b, clip_norm=1.0, nodes=3) == pytest.approx(250.0)
    assert records_from_slot(-4.0, clip_norm=1.0, nodes=3) == 3.0


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (RoundSettings(aggregation="ckks", dp_noise_shares=2), True),
        (RoundSettings(aggregation="ckks", dp_noise_shares=1), True),
        (RoundSettings(aggregation="ckks", dp_noise_shares=0), False),
        (RoundSettings(aggregation="ckks", dp_noise_shares=2, weighting="declared-counts"), False),
        (RoundSettings(aggregation="plaintext", dp_noise_shares=1), False),
    ],
)
def test_only_uniform_distributed_dp_under_ckks_carries_the_slot(
    settings: RoundSettings, expected: bool
) -> None:
    assert uses_count_slot(settings) is expected


def test_a_slot_without_units_or_shares_is_refused() -> None:
    with pytest.raises(FedembedError, match="units"):
        slot_value(units=0, clip_norm=1.0, noise_multiplier=1.0, shares=2)
    with pytest.raises(FedembedError, match="noise shares"):
        slot_value(units=5, clip_norm=1.0, noise_multiplier=1.0, shares=0)
