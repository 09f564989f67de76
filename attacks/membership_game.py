"""The membership-inference game against query adapters: recipes, shadows, every attack.

The game of Carlini et al., "Membership Inference Attacks From First Principles" (IEEE S&P
2022): ``K`` adapters of one training recipe are trained on balanced random halves of a
record pool (each record IN about half of the models). Each model in turn is the target
and the other ``K - 1`` its shadows (leave-one-out), so every attack is scored on
``K x n`` (score, membership) pairs. Attacks: loss / similarity / rank thresholds, the
loss calibrated by the public base encoder (Watson et al., ICLR 2022), and online and
offline LiRA on the logit-scaled softmax probability of the relevant document.

Two recipes: a deliberately *overfit* non-DP adapter (the control that shows the attack
works) and the *DP-SGD* recipe at a target epsilon (full batch, so the guarantee is exactly
mu-GDP and an upper bound on any attack's AUC can be shown beside the measurement).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import NDArray

from attacks.base import AttackReport
from attacks.membership_inference import (
    RecordStatistics,
    ShadowSet,
    Signal,
    attack_report,
    calibrated_loss_scores,
    lira_leave_one_out,
    threshold_scores,
    train_shadows,
)
from dp_training import (
    DPConfig,
    InteractionSet,
    TrainConfig,
    train_adapter,
)
from embedding_core.adapter import Adapter, AdapterKind
from privacy import noise_multiplier_for
from privacy.analysis import auc_bound, steps_mu

__all__ = [
    "AUC_BOUND",
    "DP_EPOCHS",
    "OVERFIT",
    "TEMPERATURE",
    "THREAT_CALIBRATED",
    "THREAT_LIRA",
    "THREAT_THRESHOLD",
    "MembershipGame",
    "dp_trainer",
    "game_reports",
    "gdp_auc_bound",
    "overfit_trainer",
    "play_game",
]

logger = logging.getLogger(__name__)

TEMPERATURE = 0.05
OVERFIT = TrainConfig(epochs=50, batch_size=64, learning_rate=3e-3, temperature=TEMPERATURE)
DP_EPOCHS = 100
DP_LR = 3e-3
DP_CLIP = 1.0
SIGNALS: tuple[Signal, ...] = ("loss", "similarity", "rank")
AUC_BOUND = "auc_bound_gdp"  # the proven bound on any attack's AUC (full-batch DP recipes)
LIRA_ONLINE = "lira online"
LIRA_OFFLINE = "lira offline"
CALIBRATED = "calibrated loss"
THREAT_THRESHOLD = (
    "The attacker holds the released adapter and a candidate (query, document) record "
    "and thresholds one per-record signal; the threshold is swept (ROC)."
)
THREAT_CALIBRATED = (
    "As the threshold attack, calibrated by the record's loss under the public base "
    "encoder (Watson et al. 2022)."
)
THREAT_LIRA = (
    "The attacker knows the training recipe and the record pool, trains shadow adapters "
    "on random halves of it and runs a per-record likelihood-ratio test (Carlini et al. 2022)."
)

Trainer = Callable[[InteractionSet, int], Adapter]


@dataclass(frozen=True)
class MembershipGame:
    """One recipe's ``K`` models on the pool, and the scores of every attack."""

    target: str
    shadows: ShadowSet
    scores: dict[str, NDArray[np.float64]]
    epsilon: float | None
    noise_multiplier: float | None = None
    steps: int = DP_EPOCHS


def gdp_auc_bound(noise_multiplier: float | None, *, steps: int = DP_EPOCHS) -> float | None:
    """Largest AUC any attack can reach on the full-batch DP recipe.

    At sample rate 1, ``steps`` Gaussian steps of sensitivity 1 (clipping) and noise
    ``sigma`` are exactly mu-GDP with ``mu = sqrt(steps) / sigma`` (Dong, Roth and Su,
    "Gaussian Differential Privacy", JRSS-B 2022); the best test between ``N(0, 1)``
    and ``N(mu, 1)`` has AUC ``Phi(mu / sqrt 2)``.
    """
    if noise_multiplier is None:
        return None
    return auc_bound(mu=steps_mu(noise_multiplier=noise_multiplier, steps=steps))


def _adapter(data: InteractionSet, kind: AdapterKind | str, rank: int | None) -> Adapter:
    """A fresh query-side adapter of the released adapter's shape."""
    return Adapter(data.dimension, kind=kind, rank=rank, side="query", seed=0)


def overfit_trainer(
    config: TrainConfig = OVERFIT,
    *,
    kind: AdapterKind | str = AdapterKind.RESIDUAL_LINEAR,
    rank: int | None = None,
) -> Trainer:
    """The control recipe: non-DP, many epochs, no weight decay, an adapter of ``kind``."""

    def train(data: InteractionSet, seed: int) -> Adapter:
        torch.manual_seed(seed)
        adapter = _adapter(data, kind, rank)
        train_adapter(adapter, data, replace(config, seed=seed))
        return adapter

    return train


def dp_trainer(
    *,
    target_epsilon: float,
    target_delta: float,
    steps: int = DP_EPOCHS,
    batch_size: int | None = None,
    kind: AdapterKind | str = AdapterKind.RESIDUAL_LINEAR,
    rank: int | None = None,
) -> tuple[Trainer, float | None]:
    """The DP-SGD recipe at ``target_epsilon``, clip 1, on an adapter of ``kind``.

    ``batch_size=None`` is the federation's recipe: full batch (sample rate 1), ``steps``
    steps. A ``batch_size`` trains ``steps`` epochs of Poisson-sampled batches of that
    expected size instead (Opacus's DP data loader; sample rate ``batch_size / n``), so
    the guarantee is amplified by subsampling and no exact GDP bound applies.

    Returns:
        The trainer and the full-batch noise multiplier (what :func:`gdp_auc_bound`
        needs), or ``None`` for a sampled recipe: its noise depends on the pool size each
        call trains on, and no exact GDP bound applies.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sigma = noise_multiplier_for(
        target_epsilon=target_epsilon, target_delta=target_delta, sample_rate=1.0, steps=steps
    )

    def train(data: InteractionSet, seed: int) -> Adapter:
        torch.manual_seed(seed)
        adapter = _adapter(data, kind, rank)
        noise = sigma
        batch = len(data) if batch_size is None else min(batch_size, len(data))
        if batch_size is not None:
            rate = 1 / math.ceil(len(data) / batch)  # as Opacus's DPDataLoader
            noise = noise_multiplier_for(
                target_epsilon=target_epsilon,
                target_delta=target_delta,
                sample_rate=rate,
                steps=steps * round(1 / rate),
            )
        config = TrainConfig(
            epochs=steps, batch_size=batch, learning_rate=DP_LR, temperature=TEMPERATURE
        )
        dp = DPConfig(
            noise_multiplier=noise, max_grad_norm=DP_CLIP, delta=target_delta, noise_seed=seed
        )
        report = train_adapter(adapter, data, config, dp=dp)
        logger.info("mia: dp shadow on %d records, epsilon %.3f", len(data), report.epsilon)
        return adapter

    return train, (sigma if batch_size is None else None)


def play_game(
    name: str,
    pool: InteractionSet,
    base: RecordStatistics,
    train: Trainer,
    *,
    models: int,
    seed: int,
    epsilon: float | None = None,
    noise_multiplier: float | None = None,
    steps: int = DP_EPOCHS,
    keep_first: list[Adapter] | None = None,
) -> MembershipGame:
    """Train ``models`` adapters with ``train`` and score every attack leave-one-out.

    Args:
        name: The target's label in reports.
        pool: The candidate records.
        base: The records' statistics under the base encoder (for calibration).
        train: The recipe.
        models: ``K`` (>= 4: leave-one-out needs IN and OUT shadows per record).
        seed: Seeds the halves and the models.
        epsilon: The recipe's epsilon (reported), ``None`` for non-DP.
        noise_multiplier: The recipe's sigma (for the GDP bound), ``None`` for non-DP.
        steps: The recipe's DP steps (for the GDP bound).
        keep_first: If given, model 0 is appended to it (e.g. to score its utility).
    """
    if models < 4:
        raise ValueError(f"the membership game needs >= 4 models, got {models}")

    def keep(data: InteractionSet, s: int) -> Adapter:
        adapter = train(data, s)
        if keep_first is not None and not keep_first:
            keep_first.append(adapter)
        return adapter

    shadows = train_shadows(pool, keep, models=models, seed=seed, temperature=TEMPERATURE)
    stats = shadows.statistics
    scores: dict[str, NDArray[np.float64]] = {
        f"{signal} threshold": np.stack([threshold_scores(s, signal) for s in stats])
        for signal in SIGNALS
    }
    scores[CALIBRATED] = np.stack([calibrated_loss_scores(s, base) for s in stats])
    scores[LIRA_ONLINE] = lira_leave_one_out(shadows.confidence, shadows.membership)
    scores[LIRA_OFFLINE] = lira_leave_one_out(shadows.confidence, shadows.membership, online=False)
    return MembershipGame(name, shadows, scores, epsilon, noise_multiplier, steps)


def _threat(variant: str) -> str:
    if variant.startswith("lira"):
        return THREAT_LIRA
    return THREAT_CALIBRATED if variant.startswith("calibrated") else THREAT_THRESHOLD


def game_reports(
    game: MembershipGame, seconds: float, *, extra: Mapping[str, object] | None = None
) -> list[AttackReport]:
    """One :class:`AttackReport` per attack of the game (AUC, TPR at low FPR, ROC)."""
    reports = []
    membership = game.shadows.membership
    started = time.perf_counter()
    bound = gdp_auc_bound(game.noise_multiplier, steps=game.steps)
    for variant, scores in game.scores.items():
        single = attack_report(
            scores[0],
            membership[0],
            variant=variant,
            target=game.target,
            threat_model="",
            seconds=0,
        )
        reports.append(
            attack_report(
                scores,
                membership,
                variant=variant,
                target=game.target,
                threat_model=_threat(variant),
                seconds=seconds,
                details={
                    "models": int(membership.shape[0]),
                    "shadows_per_target": int(membership.shape[0]) - 1
                    if variant.startswith("lira")
                    else 0,
                    "evaluation": "leave-one-out over all models",
                    "auc_single_target": single.metrics["auc"],
                    "tpr@1%fpr_single_target": single.metrics["tpr@1%fpr"],
                    "epsilon": game.epsilon,
                    "noise_multiplier": game.noise_multiplier,
                    AUC_BOUND: bound,
                    **(extra or {}),
                },
            )
        )
        if bound is not None:  # beside the AUC in the report's key metrics
            reports[-1].metrics[AUC_BOUND] = bound
    logger.info("mia: scored %d attacks in %.2f s", len(reports), time.perf_counter() - started)
    return reports
