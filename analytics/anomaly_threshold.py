"""Where to draw the line: a score threshold at a target false-positive rate, honestly.

A detector's scores on the records it was fitted on are optimistic (a k-NN detector
finds each of them at distance zero from itself), so the threshold is calibrated on
scores of normal records the detector did **not** fit: the normal set is cut into
seeded folds, a detector is fitted on all folds but one and scores the one left out
(cross-fitting), so every normal record gets an out-of-sample score; or, with
``folds=1``, a seeded fifth is held out once (split calibration).

The threshold is the split-conformal quantile of those scores (Vovk, Gammerman and
Shafer 2005; Lei et al., JASA 2018): the ``ceil((n + 1)(1 - alpha))``-th smallest of
``n`` calibration scores, a record flagged when its score is strictly above it. For a
fresh normal record exchangeable with the calibration records the chance of a flag is
then at most ``alpha`` (and above ``alpha - 1 / (n + 1)``). With cross-fitting the
final detector is fitted on the whole normal set, whose scores run a little lower than
the calibration folds' (more neighbours to be near), so the reached rate errs low.

AUROC is the Mann-Whitney statistic (ties count one half), equal to scikit-learn's
``roc_auc_score``; the rates reached are measured on labelled new records.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

from embedding_core.errors import FedembedError
from embedding_core.progress import track

__all__ = [
    "AnomalyDetector",
    "Calibration",
    "RatesAtThreshold",
    "anomaly_auroc",
    "calibrate_threshold",
    "check_target_fpr",
    "conformal_threshold",
    "min_calibration_records",
    "rates_at_threshold",
]

logger = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
SPLIT_FRACTION = 0.2


class AnomalyDetector(Protocol):
    """What calibration needs of a detector: fit on normal vectors, score any vectors."""

    name: str

    def fit(self, normal: NDArray[np.floating], labels: list[str] | None = None) -> AnomalyDetector:
        """Learn the normal set."""
        ...

    def score(self, vectors: NDArray[np.floating]) -> NDArray[np.float64]:
        """Anomaly scores, higher is more anomalous."""
        ...


def check_target_fpr(target_fpr: float) -> float:
    """``target_fpr`` when it is a rate strictly between 0 and 1."""
    if not (isinstance(target_fpr, float | int) and 0.0 < float(target_fpr) < 1.0):
        raise FedembedError(
            f"target_fpr={target_fpr} is not a rate strictly between 0 and 1",
            expected="0 < target_fpr < 1, e.g. 0.05 (one normal record in twenty flagged)",
            fix="pass target_fpr=0.05, or another rate in (0, 1)",
        )
    return float(target_fpr)


def min_calibration_records(target_fpr: float) -> int:
    """Fewest calibration scores for which a finite threshold reaches ``target_fpr``."""
    return max(1, math.ceil(1.0 / check_target_fpr(target_fpr)) - 1)


def conformal_threshold(calibration_scores: NDArray[np.floating], target_fpr: float) -> float:
    """The ``ceil((n + 1)(1 - target_fpr))``-th smallest score: flag scores above it.

    Raises:
        FedembedError: Too few scores for the rate (``n < 1 / target_fpr - 1``).
    """
    alpha = check_target_fpr(target_fpr)
    scores = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    n = scores.shape[0]
    rank = math.ceil((n + 1) * (1.0 - alpha))
    if rank > n:
        raise FedembedError(
            f"{n} calibration scores cannot set a threshold at target_fpr={alpha:g}",
            expected=f"at least {min_calibration_records(alpha)} normal records held out for "
            f"calibration at target_fpr={alpha:g}",
            fix="pass more normal records, or a larger target_fpr",
        )
    return float(scores[rank - 1])


@dataclass(frozen=True)
class Calibration:
    """Out-of-sample scores of the normal set and the threshold they give.

    Attributes:
        threshold: Flag a record whose score is strictly above this.
        target_fpr: The rate asked for.
        scores: The calibration scores (normal records scored by a detector not fitted
            on them), in the order of ``indices``.
        indices: Which normal records ``scores`` belong to.
        method: ``crossfit-<folds>`` or ``split-<fraction>``.
    """

    threshold: float
    target_fpr: float
    scores: NDArray[np.float64]
    indices: NDArray[np.int64]
    method: str

    @property
    def calibration_fpr(self) -> float:
        """Share of calibration scores above the threshold (at most the target)."""
        return float(np.mean(self.scores > self.threshold))


def _folds(n: int, folds: int, seed: int) -> list[NDArray[np.int64]]:
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    if folds == 1:
        held = max(1, round(n * SPLIT_FRACTION))
        return [np.sort(order[:held])]
    return [np.sort(part) for part in np.array_split(order, folds)]


def calibrate_threshold(
    make_detector: Callable[[], AnomalyDetector],
    normal: NDArray[np.floating],
    target_fpr: float,
    *,
    labels: list[str] | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> Calibration:
    """Score every normal record (or a held-out fifth) by a detector not fitted on it.

    Args:
        make_detector: A fresh, unfitted detector per call.
        normal: The normal vectors.
        target_fpr: The false-positive rate to reach on fresh normal records.
        labels: The normal records' labels, for detectors that use them.
        folds: Cross-fitting folds (``>= 2``), or ``1`` for one seeded split.
        seed: Seed of the fold assignment.
    """
    alpha = check_target_fpr(target_fpr)
    vectors = np.asarray(normal)
    n = vectors.shape[0]
    if folds < 1 or (folds > 1 and folds > n):
        raise FedembedError(
            f"folds={folds} is out of range for {n} normal records",
            expected=f"1 <= folds <= {n}",
        )
    parts = _folds(n, folds, seed)
    all_scores: list[NDArray[np.float64]] = []
    for held in track(parts, what="calibrate anomaly threshold", unit="folds"):
        keep = np.ones(n, dtype=bool)
        keep[held] = False
        fit_labels = None if labels is None else [labels[i] for i in np.flatnonzero(keep)]
        detector = make_detector().fit(vectors[keep], fit_labels)
        all_scores.append(np.asarray(detector.score(vectors[held]), dtype=np.float64))
    indices = np.concatenate(parts)
    scores = np.concatenate(all_scores)
    method = f"crossfit-{folds}" if folds > 1 else f"split-{SPLIT_FRACTION:g}"
    threshold = conformal_threshold(scores, alpha)
    logger.info(
        "anomaly threshold: %s on %d normal records, target fpr %.3f", method, len(scores), alpha
    )
    return Calibration(threshold, alpha, scores, indices, method)


def anomaly_auroc(
    scores: NDArray[np.floating], is_anomaly: NDArray[np.bool_] | list[bool]
) -> float | None:
    """Chance that an anomaly outscores a normal record (ties count one half).

    ``None`` when only normal records or only anomalies are present.
    """
    truth = np.asarray(is_anomaly, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    positives = int(truth.sum())
    negatives = truth.shape[0] - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(values)
    rank_sum = float(ranks[truth].sum())
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


@dataclass(frozen=True)
class RatesAtThreshold:
    """What a threshold did on labelled records (``None``: no record of that kind)."""

    fpr: float | None
    detection_rate: float | None
    flagged: int
    anomalies: int
    normals: int


def rates_at_threshold(
    scores: NDArray[np.floating], is_anomaly: NDArray[np.bool_] | list[bool], threshold: float
) -> RatesAtThreshold:
    """False-positive rate (normals flagged) and detection rate (anomalies flagged)."""
    truth = np.asarray(is_anomaly, dtype=bool)
    flagged = np.asarray(scores, dtype=np.float64) > threshold
    anomalies = int(truth.sum())
    normals = truth.shape[0] - anomalies
    return RatesAtThreshold(
        fpr=float(flagged[~truth].mean()) if normals else None,
        detection_rate=float(flagged[truth].mean()) if anomalies else None,
        flagged=int(flagged.sum()),
        anomalies=anomalies,
        normals=normals,
    )
