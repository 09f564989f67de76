"""Threshold attacks and LiRA: golden signals, synthetic games, a real overfit adapter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attacks.membership_inference import (
    MembershipInferenceError,
    attack_report,
    balanced_membership,
    calibrated_loss_scores,
    half_membership,
    lira_scores,
    no_signal_confidence,
    record_statistics,
    threshold_scores,
    train_models,
    train_shadows,
)
from attacks.roc import roc_auc
from dp_training import InteractionSet, TrainConfig, train_adapter
from embedding_core.adapter import Adapter
from tests.attacks.random_interactions import random_interactions

TEMPERATURE = 0.05


def _synthetic_game(
    effect: float, *, shadows: int = 16, targets: int = 4, records: int = 400, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Confidences with per-record difficulty (sd 3) and an IN shift of ``effect``.

    Returns the shadows' confidences and IN-masks (balanced halves), then the targets'
    (their own halves, drawn independently of the shadows').
    """
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 3.0, size=records)
    shadow_in = balanced_membership(records, shadows, seed + 1)
    target_in = half_membership(records, targets, seed + 2)

    def confidence(mask: np.ndarray) -> np.ndarray:
        return difficulty + effect * mask + rng.normal(0.0, 0.3, size=mask.shape)

    return confidence(shadow_in), shadow_in, confidence(target_in), target_in


def _overfit_trainer(data: InteractionSet, seed: int) -> Adapter:
    torch.manual_seed(seed)
    adapter = Adapter(data.dimension, side="query", seed=seed)
    config = TrainConfig(epochs=40, batch_size=32, learning_rate=3e-2, seed=seed)
    train_adapter(adapter, data, config)
    return adapter


def test_record_statistics_golden() -> None:
    # Prepare: two orthogonal documents; query 0 is document 0, query 1 is halfway.
    docs = np.eye(2, dtype=np.float32)
    half = 1 / math.sqrt(2)
    data = InteractionSet(
        query_vectors=np.array([[1, 0], [half, half]], dtype=np.float32),
        positive_index=np.array([0, 1], dtype=np.int64),
        doc_vectors=docs,
    )
    # Execute: the base encoder (no adapter).
    stats = record_statistics(None, data, temperature=0.5)
    # Assert: record 0 has logits (2, 0), record 1 has logits (sqrt2, sqrt2).
    np.testing.assert_allclose(stats.similarity, [1.0, half], rtol=1e-6)
    np.testing.assert_allclose(stats.loss, [math.log1p(math.exp(-2.0)), math.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(stats.confidence, [2.0, 0.0], atol=1e-6)
    np.testing.assert_array_equal(stats.rank, [1, 1])
    # Scores are oriented: higher = more member-like.
    np.testing.assert_allclose(threshold_scores(stats, "loss"), -stats.loss)
    np.testing.assert_array_equal(threshold_scores(stats, "rank"), [-1.0, -1.0])


def test_rank_counts_better_documents() -> None:
    docs = np.array([[1, 0], [0, 1], [0.8, 0.6]], dtype=np.float32)
    data = InteractionSet(
        query_vectors=np.array([[1, 0]], dtype=np.float32),
        positive_index=np.array([1], dtype=np.int64),
        doc_vectors=docs,
    )
    stats = record_statistics(None, data, temperature=TEMPERATURE)
    assert stats.rank.tolist() == [3]


def test_balanced_membership_is_balanced_and_seeded() -> None:
    mask = balanced_membership(records=50, models=8, seed=3)
    assert mask.shape == (8, 50)
    assert (mask.sum(axis=0) == 4).all()
    np.testing.assert_array_equal(mask, balanced_membership(records=50, models=8, seed=3))
    assert not np.array_equal(mask, balanced_membership(records=50, models=8, seed=4))


def test_half_membership_gives_each_model_its_own_half() -> None:
    mask = half_membership(records=51, models=200, seed=3)
    assert mask.shape == (200, 51)
    assert (mask.sum(axis=1) == 25).all()
    np.testing.assert_array_equal(mask, half_membership(records=51, models=200, seed=3))
    # Records are IN independently of each other across models: about half the time.
    assert np.abs(mask.mean(axis=0) - 25 / 51).max() < 0.15


def test_no_signal_confidence_shuffles_each_record_across_models() -> None:
    values = np.arange(40.0).reshape(8, 5)
    shuffled = no_signal_confidence(values, seed=1)
    np.testing.assert_array_equal(np.sort(shuffled, axis=0), values)
    assert not np.array_equal(shuffled, values)
    np.testing.assert_array_equal(shuffled, no_signal_confidence(values, seed=1))


@pytest.mark.parametrize("online", [True, False])
def test_lira_separates_a_separable_game(online: bool) -> None:
    # Prepare: IN shifts the confidence by 2 against noise 0.3, but per-record difficulty
    # (sd 3) hides the shift from a single global threshold.
    shadows, shadow_in, targets, target_in = _synthetic_game(effect=2.0)
    # Execute
    scores = lira_scores(targets, shadows, shadow_in, online=online)
    # Assert
    assert scores.shape == targets.shape
    assert roc_auc(scores.ravel(), target_in.ravel()) > 0.9
    assert roc_auc(targets.ravel(), target_in.ravel()) < 0.75


def test_lira_is_at_chance_on_a_null_game_where_leave_one_out_was_not() -> None:
    # Prepare: no membership signal at all; 4 shadows, 4 targets of 20,000 records (over
    # seeds the AUC's spread is 0.0013).
    shadows, shadow_in, targets, target_in = _synthetic_game(
        effect=0.0, shadows=4, targets=4, records=20_000
    )
    # Execute: the targets against shadows trained apart from them, and the old design
    # (each shadow in turn the target, the other three its shadows) on the same values.
    scores = lira_scores(targets, shadows, shadow_in)
    held_out = np.stack(
        [
            lira_scores(shadows[i], np.delete(shadows, i, 0), np.delete(shadow_in, i, 0))
            for i in range(4)
        ]
    )
    # Assert: chance within 0.01; leave-one-out over balanced halves ranks non-members
    # first (a member leaves one IN shadow against two OUT ones).
    assert abs(roc_auc(scores.ravel(), target_in.ravel()) - 0.5) < 0.01
    assert roc_auc(held_out.ravel(), shadow_in.ravel()) < 0.45


def test_lira_per_record_variance_also_separates() -> None:
    shadows, shadow_in, targets, target_in = _synthetic_game(effect=2.0)
    scores = lira_scores(targets[0], shadows, shadow_in, online=True, fixed_variance=False)
    assert roc_auc(scores, target_in[0]) > 0.9


def test_lira_refuses_records_without_in_models() -> None:
    shadows, shadow_in, targets, _ = _synthetic_game(effect=1.0, shadows=4, records=10)
    shadow_in[:, 0] = False
    with pytest.raises(MembershipInferenceError):
        lira_scores(targets[0], shadows, shadow_in)
    with pytest.raises(MembershipInferenceError):
        lira_scores(targets[0], shadows[:, :5], shadow_in[:, :5])


def test_train_models_refuses_masks_of_another_pool() -> None:
    pool = random_interactions(records=10, docs=4, dim=4, seed=0)
    with pytest.raises(MembershipInferenceError):
        train_models(
            pool, _overfit_trainer, np.ones((2, 9), dtype=bool), seed=0, temperature=TEMPERATURE
        )


def test_threshold_attack_beats_chance_on_overfit_adapter() -> None:
    # Prepare: 120 random records, half train a non-DP adapter for many epochs.
    data = random_interactions(records=120, docs=64, dim=16, seed=0)
    labels = np.zeros(len(data), dtype=bool)
    labels[np.random.default_rng(1).permutation(len(data))[:60]] = True
    adapter = _overfit_trainer(data.subset(np.flatnonzero(labels)), seed=0)
    # Execute
    target = record_statistics(adapter, data, temperature=TEMPERATURE)
    base = record_statistics(None, data, temperature=TEMPERATURE)
    # Assert: loss and calibrated loss find the members; the base encoder does not.
    assert roc_auc(threshold_scores(target, "loss"), labels) > 0.8
    assert roc_auc(calibrated_loss_scores(target, base), labels) > 0.75
    assert abs(roc_auc(threshold_scores(base, "loss"), labels) - 0.5) < 0.2


def test_lira_with_real_shadow_adapters() -> None:
    # Prepare: 6 shadows on balanced halves of a small random pool, 3 targets apart.
    pool = random_interactions(records=60, docs=32, dim=8, seed=2)
    shadows = train_shadows(pool, _overfit_trainer, models=6, seed=0, temperature=TEMPERATURE)
    targets = train_models(
        pool, _overfit_trainer, half_membership(60, 3, seed=1), seed=6, temperature=TEMPERATURE
    )
    # Execute
    scores = lira_scores(targets.confidence, shadows.confidence, shadows.membership)
    report = attack_report(
        scores,
        targets.membership,
        variant="lira online",
        target="tiny overfit",
        threat_model="test",
        seconds=shadows.seconds,
    )
    # Assert
    assert shadows.confidence.shape == (6, 60)
    assert report.metrics["auc"] > 0.75
    assert report.metrics["members"] == 90
    assert report.details["roc_fpr"][0] == 0.0
    assert report.details["roc_fpr"][-1] == 1.0
