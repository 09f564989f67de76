"""The membership game's recipes: DP adapters of the released shape stay under the GDP bound."""

from __future__ import annotations

import pytest

from attacks.membership_game import (
    AUC_BOUND,
    LIRA_OFFLINE,
    dp_trainer,
    game_reports,
    overfit_trainer,
    play_game,
)
from attacks.membership_inference import record_statistics
from dp_training import InteractionSet, TrainConfig
from embedding_core.adapter import AdapterKind
from tests.attacks.random_interactions import random_interactions

TEMPERATURE = 0.05


def _pool(records: int = 120) -> InteractionSet:
    return random_interactions(records=records, docs=40, dim=8, seed=3)


@pytest.mark.parametrize("kind", [AdapterKind.RESIDUAL_LINEAR, AdapterKind.SHIFT])
def test_trainers_build_the_requested_adapter_shape(kind: AdapterKind) -> None:
    pool = _pool(records=20)
    dp, sigma = dp_trainer(target_epsilon=1.0, target_delta=1e-5, steps=3, kind=kind)
    control = overfit_trainer(TrainConfig(epochs=1, batch_size=10), kind=kind)

    assert dp(pool, 0).kind is kind
    assert control(pool, 0).kind is kind
    assert sigma is not None
    assert sigma > 1.0


def test_dp_shift_game_stays_under_its_bound_and_the_control_does_not() -> None:
    # Prepare: the same pool, an overfit control and a DP recipe at epsilon 1.
    pool = _pool()
    base = record_statistics(None, pool, temperature=TEMPERATURE)
    train, sigma = dp_trainer(
        target_epsilon=1.0, target_delta=1e-5, steps=20, kind=AdapterKind.SHIFT
    )
    control = overfit_trainer(
        TrainConfig(epochs=40, batch_size=16, learning_rate=3e-2, temperature=TEMPERATURE)
    )
    # Execute
    dp_game = play_game(
        "dp", pool, base, train, models=8, seed=0, epsilon=1.0, noise_multiplier=sigma, steps=20
    )
    control_game = play_game("control", pool, base, control, models=8, seed=0)
    dp_reports = game_reports(dp_game, 0.0)
    control_reports = game_reports(control_game, 0.0)
    # Assert: every attack under the proven bound (plus sampling slack: 960 scores),
    # while the same attacks find the overfit control's members.
    bound = dp_reports[0].metrics[AUC_BOUND]
    assert bound == pytest.approx(0.5747, abs=2e-3)
    assert all(AUC_BOUND not in r.metrics for r in control_reports)
    assert max(r.metrics["auc"] for r in dp_reports) < bound + 0.06
    best_control = max(r.metrics["auc"] for r in control_reports)
    lira = next(r for r in control_reports if r.details["variant"] == LIRA_OFFLINE)
    assert best_control > 0.75
    assert lira.metrics["auc"] > bound + 0.15
