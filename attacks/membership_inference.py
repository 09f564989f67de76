"""Membership inference against a trained query adapter: threshold attacks and LiRA.

The privacy unit is one interaction record, a (query, relevant document) pair (see
:mod:`dp_training.interactions`). The attacker holds a candidate record and
the released adapter and asks whether the record was in the training data. Per-record
signals under an adapter: the corpus-softmax loss of the record, the cosine similarity
of the adapted query to its relevant document, the rank of that document in the corpus,
and the logit-scaled confidence ``phi = log(p / (1 - p))`` of the softmax probability
``p`` of the relevant document (computed stably as ``z_y - logsumexp_{j != y} z_j``).

Attacks:

* Threshold attacks (Yeom, Giacomelli, Fredrikson and Jha, "Privacy Risk in Machine
  Learning: Analyzing the Connection to Overfitting", CSF 2018): members have lower
  loss / higher similarity / better rank.
* Difficulty-calibrated loss (Watson, Guo, Cormode and Sablayrolles, "On the Importance
  of Difficulty Calibration in Membership Inference Attacks", ICLR 2022): the loss
  drop from the public base encoder (the identity adapter) to the target.
* LiRA (Carlini, Chien, Nasr, Song, Terzis and Tramer, "Membership Inference Attacks
  From First Principles", IEEE S&P 2022): shadow adapters trained with the target's
  recipe on random halves of a record pool, apart from the target, give per record
  Gaussian fits of ``phi`` when the record was IN and OUT of training. Online LiRA scores
  the likelihood ratio ``log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)``; offline
  LiRA (OUT models only) the one-sided ``log P[Z <= phi]``, ``Z ~ N(mu_out, s_out)``.
  With few shadows the variances are pooled over records ("fixed variance", as the paper
  advises below 64 shadow models). The shadows' IN/OUT split must not depend on the
  target's membership: with each record IN exactly half of ``K`` models, taking one model
  as the target and the other ``K - 1`` as its shadows leaves a member fewer IN shadows
  than a non-member, and a score that carries no membership at all reaches AUC 0.41 at
  ``K = 4`` (0.49 at ``K = 16``). So the targets are trained apart, on halves drawn
  independently of the shadows' (:func:`half_membership`), and
  :func:`no_signal_confidence` gives the control that shows the evaluation at chance.

Scores are oriented so that higher means "more likely a member"; judge them with
:mod:`attacks.roc`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.special import log_ndtr

from attacks.base import AttackReport
from attacks.roc import membership_metrics, roc_curve
from dp_training import InteractionSet
from embedding_core.adapter import Adapter
from embedding_core.errors import FedembedError

__all__ = [
    "ATTACK_NAME",
    "SIGNALS",
    "MembershipInferenceError",
    "RecordStatistics",
    "ShadowSet",
    "attack_report",
    "balanced_membership",
    "calibrated_loss_scores",
    "half_membership",
    "lira_scores",
    "no_signal_confidence",
    "record_statistics",
    "threshold_scores",
    "train_models",
    "train_shadows",
]

logger = logging.getLogger(__name__)

ATTACK_NAME = "membership_inference"
Signal = Literal["loss", "similarity", "rank", "confidence"]
SIGNALS: tuple[str, ...] = ("loss", "similarity", "rank", "confidence")
_CHUNK = 1024
_MIN_STD = 1e-6
_ROC_POINTS = 200

Trainer = Callable[[InteractionSet, int], Adapter]
"""Trains a fresh adapter on the given records with the given seed (the target's recipe)."""


class MembershipInferenceError(FedembedError):
    """Inputs of a membership-inference attack are inconsistent."""


@dataclass(frozen=True)
class RecordStatistics:
    """Per-record signals of ``n`` records under one adapter.

    Attributes:
        loss: Corpus-softmax cross-entropy at the temperature.
        similarity: Cosine of the adapted query and its relevant document.
        rank: 1-based rank of the relevant document among all documents.
        confidence: Logit-scaled softmax probability of the relevant document.
    """

    loss: NDArray[np.float64]
    similarity: NDArray[np.float64]
    rank: NDArray[np.int64]
    confidence: NDArray[np.float64]


@torch.no_grad()
def record_statistics(
    adapter: Adapter | None, data: InteractionSet, *, temperature: float
) -> RecordStatistics:
    """The signals of every record of ``data`` under ``adapter`` (``None``: base encoder).

    Args:
        adapter: A query-side adapter, or ``None`` for the identity (base vectors).
        data: The candidate records and the documents their softmax runs over.
        temperature: Softmax temperature on cosine scores (the training one).

    Returns:
        The per-record statistics, aligned with the records.
    """
    if not temperature > 0:
        raise MembershipInferenceError(f"temperature must be > 0, got {temperature}")
    queries = data.query_vectors if adapter is None else adapter.transform(data.query_vectors)
    docs = torch.from_numpy(data.doc_vectors).double()
    positives = torch.from_numpy(data.positive_index)
    parts: list[list[NDArray[np.float64]]] = [[], [], [], []]
    for start in range(0, len(data), _CHUNK):
        q = torch.from_numpy(np.ascontiguousarray(queries[start : start + _CHUNK])).double()
        q = torch.nn.functional.normalize(q, dim=1)
        pos = positives[start : start + _CHUNK]
        rows = torch.arange(q.shape[0])
        cosine = q @ docs.T
        logits = cosine / temperature
        target = logits[rows, pos]
        loss = torch.logsumexp(logits, dim=1) - target
        others = logits.clone()
        others[rows, pos] = -torch.inf
        confidence = target - torch.logsumexp(others, dim=1)
        rank = 1 + (cosine > cosine[rows, pos].unsqueeze(1)).sum(dim=1)
        for bucket, value in zip(parts, (loss, cosine[rows, pos], rank, confidence), strict=True):
            bucket.append(value.numpy().astype(np.float64))
    loss_all, sim_all, rank_all, conf_all = (np.concatenate(p) for p in parts)
    return RecordStatistics(
        loss=loss_all, similarity=sim_all, rank=rank_all.astype(np.int64), confidence=conf_all
    )


def threshold_scores(stats: RecordStatistics, signal: Signal) -> NDArray[np.float64]:
    """Membership scores of the threshold attack on one signal (higher = member)."""
    if signal == "loss":
        return -stats.loss
    if signal == "similarity":
        return stats.similarity.copy()
    if signal == "rank":
        return -stats.rank.astype(np.float64)
    if signal == "confidence":
        return stats.confidence.copy()
    raise MembershipInferenceError(f"unknown signal {signal!r}", expected=f"one of {SIGNALS}")


def calibrated_loss_scores(
    target: RecordStatistics, reference: RecordStatistics
) -> NDArray[np.float64]:
    """Loss drop from ``reference`` (e.g. the base encoder) to ``target`` per record."""
    if target.loss.shape != reference.loss.shape:
        raise MembershipInferenceError(
            f"{target.loss.size} target records and {reference.loss.size} reference records",
            expected="statistics of the same records",
        )
    return reference.loss - target.loss


def balanced_membership(records: int, models: int, seed: int) -> NDArray[np.bool_]:
    """``(models, records)`` IN-masks: each record is IN exactly ``models // 2`` models.

    The balanced design of Carlini et al.'s code: each model trains on about half the
    pool and every record has as many IN as OUT models (for an even ``models``).
    """
    if models < 2 or records < 1:
        raise MembershipInferenceError(
            f"need >= 2 models and >= 1 record, got {models} models, {records} records"
        )
    rng = np.random.default_rng(seed)
    order = rng.random((models, records)).argsort(axis=0)
    return np.asarray(order < models // 2, dtype=np.bool_)


def half_membership(records: int, models: int, seed: int) -> NDArray[np.bool_]:
    """``(models, records)`` IN-masks: each model trains on its own random half of the pool.

    The targets' design: every model draws ``records // 2`` members uniformly and
    independently of every other model (and of the shadows, given another ``seed``), so a
    target's membership says nothing about which shadows hold a record.
    """
    if models < 1 or records < 2:
        raise MembershipInferenceError(
            f"need >= 1 model and >= 2 records, got {models} models, {records} records"
        )
    rng = np.random.default_rng(seed)
    order = rng.random((models, records)).argsort(axis=1)
    return np.asarray(order < records // 2, dtype=np.bool_)


def no_signal_confidence(confidence: NDArray[np.float64], seed: int) -> NDArray[np.float64]:
    """``confidence`` with each record's values shuffled across the models (seeded).

    The no-signal control: a record keeps its difficulty and its spread over models, but
    which model holds which value no longer depends on whether the record trained it.
    Any membership attack scored on these values with the real IN-masks should be at
    chance (AUC 0.5); an evaluation that is not, is biased.
    """
    values = np.asarray(confidence, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 2:
        raise MembershipInferenceError(
            f"confidence {values.shape} is not (models, records) with >= 2 models"
        )
    order = np.random.default_rng(seed).random(values.shape).argsort(axis=0)
    return np.take_along_axis(values, order, axis=0)


def _pooled_std(
    values: NDArray[np.float64], mask: NDArray[np.bool_], mean: NDArray[np.float64]
) -> float:
    counts = mask.sum(axis=0)
    dof = int(counts.sum() - (counts > 0).sum())
    if dof < 1:
        raise MembershipInferenceError("too few shadow observations to estimate a variance")
    residual = np.where(mask, values - mean, 0.0)
    return max(float(np.sqrt((residual**2).sum() / dof)), _MIN_STD)


def _fit(
    values: NDArray[np.float64], mask: NDArray[np.bool_], fixed_variance: bool, side: str
) -> tuple[NDArray[np.float64], NDArray[np.float64] | float]:
    counts = mask.sum(axis=0)
    needed = 1 if fixed_variance else 2
    if (counts < needed).any():
        raise MembershipInferenceError(
            f"{int((counts < needed).sum())} records have fewer than {needed} {side} shadow models",
            fix="train more shadow models, or use balanced_membership for the shadow splits",
        )
    mean = np.where(mask, values, 0.0).sum(axis=0) / counts
    if fixed_variance:
        return mean, _pooled_std(values, mask, mean)
    var = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0) / (counts - 1)
    return mean, np.maximum(np.sqrt(var), _MIN_STD)


def _log_normal(
    x: NDArray[np.float64], mean: NDArray[np.float64], std: NDArray[np.float64] | float
) -> NDArray[np.float64]:
    z = (x - mean) / std
    return np.asarray(-0.5 * z**2 - np.log(std), dtype=np.float64)


def lira_scores(
    target_confidence: NDArray[np.float64],
    shadow_confidence: NDArray[np.float64],
    shadow_in: NDArray[np.bool_],
    *,
    online: bool = True,
    fixed_variance: bool = True,
) -> NDArray[np.float64]:
    """LiRA membership scores of ``n`` records under one or more targets (higher = member).

    The shadows must be trained apart from the targets, on IN/OUT splits drawn
    independently of the targets' membership (see the module's notes on leave-one-out).

    Args:
        target_confidence: ``(n,)`` logit-scaled confidences under the target, or
            ``(t, n)`` under ``t`` targets scored against the same shadows.
        shadow_confidence: ``(k, n)`` the same under ``k`` shadow models.
        shadow_in: ``(k, n)`` whether each record was in each shadow's training data.
        online: Use IN and OUT fits (likelihood ratio); ``False``: OUT only (offline).
        fixed_variance: Pool each side's variance over all records.

    Returns:
        Scores of ``target_confidence``'s shape.
    """
    x = np.asarray(target_confidence, dtype=np.float64)
    values = np.asarray(shadow_confidence, dtype=np.float64)
    mask = np.asarray(shadow_in, dtype=bool)
    if (
        x.ndim not in (1, 2)
        or values.ndim != 2
        or values.shape != mask.shape
        or values.shape[1] != x.shape[-1]
    ):
        raise MembershipInferenceError(
            f"shapes target {x.shape}, shadows {values.shape}, IN-mask {mask.shape} do not fit",
            expected="(n,) or (t, n), (k, n), (k, n)",
        )
    mu_out, sd_out = _fit(values, ~mask, fixed_variance, "OUT")
    if not online:
        return np.asarray(log_ndtr((x - mu_out) / sd_out), dtype=np.float64)
    mu_in, sd_in = _fit(values, mask, fixed_variance, "IN")
    return _log_normal(x, mu_in, sd_in) - _log_normal(x, mu_out, sd_out)


@dataclass(frozen=True)
class ShadowSet:
    """Models trained on subsets of a record pool, and their per-record signals.

    Attributes:
        membership: ``(k, n)`` whether record ``j`` trained model ``i``.
        statistics: Per model, the signals of all ``n`` pool records under it.
        seconds: Total training time.
    """

    membership: NDArray[np.bool_]
    statistics: list[RecordStatistics]
    seconds: float

    @property
    def confidence(self) -> NDArray[np.float64]:
        """``(k, n)`` logit-scaled confidences."""
        return np.stack([s.confidence for s in self.statistics])


def train_models(
    pool: InteractionSet,
    train: Trainer,
    membership: NDArray[np.bool_],
    *,
    seed: int,
    temperature: float,
) -> ShadowSet:
    """Train one adapter per row of ``membership`` on those records of ``pool``.

    Args:
        pool: The candidate records (the attacker's population).
        train: The target's training recipe: ``train(records, seed) -> adapter``.
        membership: ``(models, n)`` IN-masks over ``pool``.
        seed: Model ``i`` is trained with seed ``seed + i``.
        temperature: Softmax temperature of the signals.

    Returns:
        The IN-masks and every model's statistics on the whole pool.
    """
    mask = np.asarray(membership, dtype=bool)
    if mask.ndim != 2 or mask.shape[1] != len(pool):
        raise MembershipInferenceError(
            f"membership {mask.shape} does not fit a pool of {len(pool)} records",
            expected="(models, records) IN-masks",
        )
    started = time.perf_counter()
    stats: list[RecordStatistics] = []
    for i, row in enumerate(mask):
        adapter = train(pool.subset(np.flatnonzero(row)), seed + i)
        stats.append(record_statistics(adapter, pool, temperature=temperature))
        logger.info(
            "shadows: trained model %d/%d (%.1f s)", i + 1, len(mask), time.perf_counter() - started
        )
    return ShadowSet(membership=mask, statistics=stats, seconds=time.perf_counter() - started)


def train_shadows(
    pool: InteractionSet, train: Trainer, *, models: int, seed: int, temperature: float
) -> ShadowSet:
    """:func:`train_models` on :func:`balanced_membership` halves (``seed`` seeds both)."""
    membership = balanced_membership(len(pool), models, seed)
    return train_models(pool, train, membership, seed=seed, temperature=temperature)


def attack_report(
    scores: NDArray[np.float64],
    labels: NDArray[np.bool_],
    *,
    variant: str,
    target: str,
    threat_model: str,
    seconds: float,
    details: dict[str, object] | None = None,
) -> AttackReport:
    """An :class:`AttackReport` with AUC, TPR at 0.1% / 1% FPR and a thinned ROC."""
    flat_scores = np.asarray(scores, dtype=np.float64).ravel()
    flat_labels = np.asarray(labels, dtype=bool).ravel()
    curve = roc_curve(flat_scores, flat_labels)
    # Log-spaced in FPR, so the low-FPR end survives the thinning.
    grid = np.geomspace(float(curve.fpr[curve.fpr > 0].min()), 1.0, _ROC_POINTS)
    picked = np.searchsorted(curve.fpr, grid, side="right") - 1
    keep = np.unique(np.r_[0, picked, curve.fpr.size - 1])
    return AttackReport(
        attack=ATTACK_NAME,
        target=target,
        threat_model=threat_model,
        metrics=membership_metrics(flat_scores, flat_labels),
        seconds=seconds,
        details={
            "variant": variant,
            "roc_fpr": curve.fpr[keep].tolist(),
            "roc_tpr": curve.tpr[keep].tolist(),
            **(details or {}),
        },
    )
