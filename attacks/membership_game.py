"""The membership-inference game against query adapters: recipes, models, every attack.

The game of Carlini et al., "Membership Inference Attacks From First Principles" (IEEE S&P
2022): ``K`` shadow adapters of one training recipe are trained on balanced random halves
of a record pool (each record IN half of them), and ``T`` target adapters of the same
recipe apart from them, each on its own random half drawn independently of the shadows
(so the shadows a record has IN and OUT do not depend on whether it trained the target).
Every attack is scored on the targets' ``T x n`` (score, membership) pairs. Attacks:
loss / similarity / rank thresholds, the loss calibrated by the public base encoder
(Watson et al., ICLR 2022), and online and offline LiRA on the logit-scaled softmax
probability of the relevant document, fitted on the shadows. Beside them runs the
no-signal control: online LiRA on the same models with each record's confidences
shuffled across models (:func:`attacks.membership_inference.no_signal_confidence`),
which an unbiased evaluation scores at AUC 0.5.

Two recipes: a deliberately *overfit* non-DP adapter (the control that shows the attack
works) and the *DP-SGD* recipe at a target epsilon (full batch, so the guarantee is exactly
mu-GDP and the recipe's own bound on any attack's AUC can be shown beside the
measurement). The bound that holds for a *release* is its own ledger's, which the caller
passes to :func:`game_reports` (the audit reads it from the release's manifest).
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
    balanced_membership,
    calibrated_loss_scores,
    half_membership,
    lira_scores,
    no_signal_confidence,
    threshold_scores,
    train_models,
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
    "CONTROL",
    "CONTROL_DRAWS",
    "DP_EPOCHS",
    "OVERFIT",
    "RECIPE_AUC_BOUND",
    "TEMPERATURE",
    "THREAT_CALIBRATED",
    "THREAT_CONTROL",
    "THREAT_LIRA",
    "THREAT_THRESHOLD",
    "MembershipGame",
    "dp_trainer",
    "game_reports",
    "gdp_auc_bound",
    "no_signal_control",
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
AUC_BOUND = "auc_bound_gdp"  # the proven bound on any attack's AUC against the release
RECIPE_AUC_BOUND = "auc_bound_recipe"  # the same for the game's own full-batch DP models
LIRA_ONLINE = "lira online"
LIRA_OFFLINE = "lira offline"
CALIBRATED = "calibrated loss"
CONTROL = "lira online, no-signal control"
CONTROL_DRAWS = 32  # seeded shuffles pooled by the control: its AUC's spread is about 0.003
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
THREAT_CONTROL = (
    "No attacker: online LiRA on the same target and shadow models with each record's "
    "confidences shuffled across the models, so they carry no membership; an unbiased "
    "evaluation scores it at AUC 0.5."
)

Trainer = Callable[[InteractionSet, int], Adapter]


@dataclass(frozen=True)
class MembershipGame:
    """One recipe's shadow and target models on the pool, and the scores of every attack.

    ``scores`` are ``(T, n)`` per attack, aligned with ``targets.membership``;
    ``control_scores`` and ``control_labels`` are the no-signal control's pooled draws.
    """

    target: str
    shadows: ShadowSet
    targets: ShadowSet
    scores: dict[str, NDArray[np.float64]]
    control_scores: NDArray[np.float64]
    control_labels: NDArray[np.bool_]
    epsilon: float | None
    noise_multiplier: float | None = None
    steps: int = DP_EPOCHS


def gdp_auc_bound(noise_multiplier: float | None, *, steps: int = DP_EPOCHS) -> float | None:
    """Largest AUC any attack can reach on a model of the full-batch DP recipe.

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
        units = data.num_units  # DP-SGD samples privacy units, not records
        batch = units if batch_size is None else min(batch_size, units)
        if batch_size is not None:
            rate = 1 / math.ceil(units / batch)  # as Opacus's DPDataLoader
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


def _streams(seed: int) -> tuple[int, int, int]:
    """Independent seeds for the shadows, the targets and the control (one ``seed``)."""
    shadow, target, control = (
        int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(3)
    )
    return shadow, target, control


def no_signal_control(
    shadows: ShadowSet, targets: ShadowSet, *, seed: int, draws: int = CONTROL_DRAWS
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Online LiRA on confidences shuffled across all models: ``draws`` pooled, seeded.

    Returns:
        ``(draws * T, n)`` scores and the targets' IN-masks tiled to match.
    """
    k = shadows.membership.shape[0]
    both = np.vstack([shadows.confidence, targets.confidence])
    scores = []
    for draw in range(draws):
        shuffled = no_signal_confidence(both, seed + draw)
        scores.append(lira_scores(shuffled[k:], shuffled[:k], shadows.membership))
    return np.vstack(scores), np.tile(targets.membership, (draws, 1))


def play_game(
    name: str,
    pool: InteractionSet,
    base: RecordStatistics,
    train: Trainer,
    *,
    shadows: int,
    targets: int,
    seed: int,
    epsilon: float | None = None,
    noise_multiplier: float | None = None,
    steps: int = DP_EPOCHS,
    keep_first: list[Adapter] | None = None,
) -> MembershipGame:
    """Train ``shadows`` and ``targets`` adapters with ``train``; score every attack.

    Args:
        name: The target's label in reports.
        pool: The candidate records.
        base: The records' statistics under the base encoder (for calibration).
        train: The recipe.
        shadows: ``K`` (>= 4: the pooled fits need two IN and two OUT shadows per record).
        targets: ``T`` (>= 1), trained on halves drawn independently of the shadows'.
        seed: Seeds the halves, the models and the control.
        epsilon: The recipe's epsilon (reported), ``None`` for non-DP.
        noise_multiplier: The recipe's sigma (for its GDP bound), ``None`` for non-DP.
        steps: The recipe's DP steps (for its GDP bound).
        keep_first: If given, target 0 is appended to it (e.g. to score its utility).
    """
    if shadows < 4 or targets < 1:
        raise ValueError(
            f"the membership game needs >= 4 shadows and >= 1 target, got {shadows}, {targets}"
        )
    shadow_seed, target_seed, control_seed = _streams(seed)
    shadow_set = train_models(
        pool,
        train,
        balanced_membership(len(pool), shadows, shadow_seed),
        seed=seed,
        temperature=TEMPERATURE,
    )

    def keep(data: InteractionSet, s: int) -> Adapter:
        adapter = train(data, s)
        if keep_first is not None and not keep_first:
            keep_first.append(adapter)
        return adapter

    target_set = train_models(
        pool,
        keep,
        half_membership(len(pool), targets, target_seed),
        seed=seed + shadows,
        temperature=TEMPERATURE,
    )
    stats = target_set.statistics
    scores: dict[str, NDArray[np.float64]] = {
        f"{signal} threshold": np.stack([threshold_scores(s, signal) for s in stats])
        for signal in SIGNALS
    }
    scores[CALIBRATED] = np.stack([calibrated_loss_scores(s, base) for s in stats])
    for variant, online in ((LIRA_ONLINE, True), (LIRA_OFFLINE, False)):
        scores[variant] = lira_scores(
            target_set.confidence, shadow_set.confidence, shadow_set.membership, online=online
        )
    control, labels = no_signal_control(shadow_set, target_set, seed=control_seed)
    return MembershipGame(
        name,
        shadow_set,
        target_set,
        scores,
        control,
        labels,
        epsilon,
        noise_multiplier,
        steps,
    )


def _threat(variant: str) -> str:
    if variant == CONTROL:
        return THREAT_CONTROL
    if variant.startswith("lira"):
        return THREAT_LIRA
    return THREAT_CALIBRATED if variant.startswith("calibrated") else THREAT_THRESHOLD


def game_reports(
    game: MembershipGame,
    seconds: float,
    *,
    bound: float | None = None,
    extra: Mapping[str, object] | None = None,
) -> list[AttackReport]:
    """One :class:`AttackReport` per attack of the game, and one for the no-signal control.

    Args:
        game: The played game.
        seconds: Its training and scoring time.
        bound: The proven bound on any attack's AUC against what the game stands for (a
            release's, from its ledger), shown as the key metric ``auc_bound_gdp``;
            ``None``: no bound is shown. The game's own recipe bound is a detail.
        extra: More details for every report.
    """
    reports = []
    shadows = int(game.shadows.membership.shape[0])
    started = time.perf_counter()
    runs = [(v, s, game.targets.membership) for v, s in game.scores.items()]
    runs.append((CONTROL, game.control_scores, game.control_labels))
    for variant, scores, membership in runs:
        single = attack_report(
            scores[0],
            membership[0],
            variant=variant,
            target=game.target,
            threat_model="",
            seconds=0,
        )
        details: dict[str, object] = {
            "shadows": shadows if variant.startswith("lira") else 0,
            "targets": int(game.targets.membership.shape[0]),
            "evaluation": "targets trained apart from the shadows, on independent halves",
            "auc_single_target": single.metrics["auc"],
            "tpr@1%fpr_single_target": single.metrics["tpr@1%fpr"],
            "epsilon": game.epsilon,
            "noise_multiplier": game.noise_multiplier,
            RECIPE_AUC_BOUND: gdp_auc_bound(game.noise_multiplier, steps=game.steps),
            AUC_BOUND: bound,
            **(extra or {}),
        }
        if variant == CONTROL:
            details["control_draws"] = scores.shape[0] // game.targets.membership.shape[0]
        report = attack_report(
            scores,
            membership,
            variant=variant,
            target=game.target,
            threat_model=_threat(variant),
            seconds=seconds,
            details=details,
        )
        if bound is not None:  # beside the AUC in the report's key metrics
            report.metrics[AUC_BOUND] = bound
        reports.append(report)
    logger.info("mia: scored %d attacks in %.2f s", len(reports), time.perf_counter() - started)
    return reports
