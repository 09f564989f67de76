"""The membership game: DP adapters stay under the GDP bound; a no-signal game is at chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attacks.membership_game import (
    AUC_BOUND,
    CONTROL,
    LIRA_OFFLINE,
    LIRA_ONLINE,
    RECIPE_AUC_BOUND,
    dp_trainer,
    game_reports,
    gdp_auc_bound,
    overfit_trainer,
    play_game,
)
from attacks.membership_inference import lira_scores, record_statistics
from attacks.roc import roc_auc
from dp_training import InteractionSet, TrainConfig, train_adapter
from embedding_core.adapter import Adapter, AdapterKind
from tests.attacks.random_interactions import random_interactions

TEMPERATURE = 0.05


def _pool(records: int = 120) -> InteractionSet:
    return random_interactions(records=records, docs=40, dim=8, seed=3)


def _blind_trainer(data: InteractionSet, seed: int) -> Adapter:
    """A recipe that never sees its records: it trains on fresh random ones of its seed.

    Every model it returns was trained without any pool record, so no attack can tell
    members (the records it was handed) from non-members.
    """
    torch.manual_seed(seed)
    other = random_interactions(
        records=64, docs=data.doc_vectors.shape[0], dim=data.dimension, seed=seed
    )
    unseen = InteractionSet(other.query_vectors, other.positive_index, data.doc_vectors)
    adapter = Adapter(data.dimension, side="query", seed=seed)
    train_adapter(
        adapter, unseen, TrainConfig(epochs=5, batch_size=32, learning_rate=3e-2, seed=seed)
    )
    return adapter


@pytest.mark.parametrize("kind", [AdapterKind.RESIDUAL_LINEAR, AdapterKind.SHIFT])
def test_trainers_build_the_requested_adapter_shape(kind: AdapterKind) -> None:
    pool = _pool(records=20)
    dp, sigma = dp_trainer(target_epsilon=1.0, target_delta=1e-5, steps=3, kind=kind)
    control = overfit_trainer(TrainConfig(epochs=1, batch_size=10), kind=kind)

    assert dp(pool, 0).kind is kind
    assert control(pool, 0).kind is kind
    assert sigma is not None
    assert sigma > 1.0


def test_a_game_without_membership_signal_is_at_chance() -> None:
    # Prepare: 20,000 records, a recipe blind to them, 4 shadows (where one model against
    # the other three, the old leave-one-out evaluation, ranked non-members first).
    pool = random_interactions(records=20_000, docs=32, dim=8, seed=5)
    base = record_statistics(None, pool, temperature=TEMPERATURE)
    # Execute
    game = play_game("blind", pool, base, _blind_trainer, shadows=4, targets=4, seed=0)
    reports = {r.details["variant"]: r for r in game_reports(game, 0.0)}
    shadows = game.shadows
    held_out = np.stack(
        [
            lira_scores(
                shadows.confidence[i],
                np.delete(shadows.confidence, i, 0),
                np.delete(shadows.membership, i, 0),
            )
            for i in range(4)
        ]
    )
    # Assert: every attack and the control at 0.5 +- 0.01 (their spread is about 0.002);
    # leave-one-out on the same models is not.
    assert {LIRA_ONLINE, LIRA_OFFLINE, CONTROL} <= set(reports)
    for variant, report in reports.items():
        assert abs(report.metrics["auc"] - 0.5) < 0.01, variant
    assert roc_auc(held_out.ravel(), shadows.membership.ravel()) < 0.45


def test_targets_train_on_halves_independent_of_the_shadows() -> None:
    pool = _pool(records=400)
    base = record_statistics(None, pool, temperature=TEMPERATURE)
    game = play_game("blind", pool, base, _blind_trainer, shadows=4, targets=2, seed=1)
    assert game.shadows.membership.shape == (4, 400)
    assert (game.shadows.membership.sum(axis=0) == 2).all()
    assert (game.targets.membership.sum(axis=1) == 200).all()
    # A target's members are spread evenly over the shadows' splits.
    for target in game.targets.membership:
        assert abs(game.shadows.membership[:, target].mean() - 0.5) < 0.1
    np.testing.assert_array_equal(
        game.control_scores,
        play_game("blind", pool, base, _blind_trainer, shadows=4, targets=2, seed=1).control_scores,
    )


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
    bound = gdp_auc_bound(sigma, steps=20)
    # Execute
    dp_game = play_game(
        "dp", pool, base, train, shadows=4, targets=8, seed=0, epsilon=1.0, noise_multiplier=sigma,
        steps=20,
    )  # fmt: skip
    control_game = play_game("control", pool, base, control, shadows=4, targets=8, seed=0)
    dp_reports = game_reports(dp_game, 0.0, bound=bound)
    control_reports = game_reports(control_game, 0.0)
    # Assert: every attack under the proven bound (plus sampling slack: 960 scores),
    # while the same attacks find the overfit control's members.
    assert bound is not None
    assert bound == pytest.approx(0.5747, abs=2e-3)
    assert all(r.metrics[AUC_BOUND] == bound for r in dp_reports)
    assert all(r.details[RECIPE_AUC_BOUND] == bound for r in dp_reports)
    assert all(AUC_BOUND not in r.metrics for r in control_reports)
    assert max(r.metrics["auc"] for r in dp_reports) < bound + 0.06
    attacks = [r for r in control_reports if r.details["variant"] != CONTROL]
    lira = next(r for r in attacks if r.details["variant"] == LIRA_OFFLINE)
    no_signal = next(r for r in control_reports if r.details["variant"] == CONTROL)
    assert max(r.metrics["auc"] for r in attacks) > 0.75
    assert lira.metrics["auc"] > bound + 0.15
    assert abs(no_signal.metrics["auc"] - 0.5) < 0.05  # 120 records: a wide margin
