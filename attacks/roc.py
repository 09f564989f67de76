"""ROC analysis of membership-inference scores: AUC and TPR at a fixed low FPR.

Membership inference is judged by its true-positive rate at a low false-positive rate
on a log-scale ROC, not by accuracy or AUC alone (Carlini, Chien, Nasr, Song, Terzis
and Tramer, "Membership Inference Attacks From First Principles", IEEE S&P 2022): an
attack that confidently identifies a few members is a privacy failure even when its
average-case AUC is near 0.5.

Convention: a higher score means "more likely a member"; label ``True``/``1`` is a
member (positive). Pure numpy.

With ``n`` non-members the smallest non-zero FPR is ``1 / n`` (:func:`fpr_resolution`):
a TPR "at 0.1% FPR" measured on 460 non-members is really the TPR at FPR 0, the largest
threshold passing no non-member. :func:`membership_metrics` reports that resolution and
the TPR at the lowest achievable FPR alongside the requested points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedding_core.errors import FedembedError

__all__ = [
    "DEFAULT_FPRS",
    "RocCurve",
    "RocError",
    "fpr_resolution",
    "membership_metrics",
    "roc_auc",
    "roc_curve",
    "tpr_at_fpr",
]

DEFAULT_FPRS: tuple[float, ...] = (0.001, 0.01)
"""The false-positive rates Carlini et al. (2022) report: 0.1% and 1%."""

AUC_KEY = "auc"
LOWEST_FPR_KEY = "lowest_fpr"
TPR_AT_LOWEST_FPR_KEY = "tpr@lowest_fpr"
TPR_AT_ZERO_FPR_KEY = "tpr@0fpr"
MEMBERS_KEY = "members"
NON_MEMBERS_KEY = "non_members"


class RocError(FedembedError):
    """Scores and labels cannot be turned into a ROC curve."""


@dataclass(frozen=True)
class RocCurve:
    """The ROC of a score, one point per distinct threshold.

    Attributes:
        fpr: Non-decreasing false-positive rates, starting at 0 and ending at 1.
        tpr: True-positive rates at the same thresholds.
        thresholds: Score thresholds (``score >= threshold`` is called a member); the
            first is ``+inf`` (nobody called a member).
    """

    fpr: NDArray[np.float64]
    tpr: NDArray[np.float64]
    thresholds: NDArray[np.float64]


def _check(scores: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64)
    raw = np.asarray(labels)
    if s.ndim != 1 or raw.shape != s.shape:
        raise RocError(
            f"scores {s.shape} and labels {raw.shape} are not two aligned 1-D arrays",
            expected="one score and one membership label per record",
        )
    if not np.isin(raw, (0, 1)).all():
        raise RocError("labels must be booleans or 0/1", expected="1 = member, 0 = non-member")
    y = raw.astype(bool)
    if not np.isfinite(s).all():
        raise RocError("scores hold NaN or infinite values", fix="check the attack's scores")
    if y.all() or not y.any():
        raise RocError(
            f"need members and non-members, got {int(y.sum())} members of {y.size}",
            expected="at least one record of each class",
        )
    return s, y


def roc_curve(scores: ArrayLike, labels: ArrayLike) -> RocCurve:
    """The ROC curve of ``scores`` for ``labels`` (ties share one point).

    Args:
        scores: ``(n,)`` attack scores, higher = more likely a member.
        labels: ``(n,)`` true membership (bool or 0/1).

    Returns:
        The curve from ``(0, 0)`` to ``(1, 1)``.
    """
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # The last index of each run of equal scores: thresholds between distinct values.
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    true_pos = np.cumsum(y_sorted)[last]
    false_pos = (last + 1) - true_pos
    positives, negatives = int(y.sum()), int((~y).sum())
    return RocCurve(
        fpr=np.r_[0.0, false_pos / negatives],
        tpr=np.r_[0.0, true_pos / positives],
        thresholds=np.r_[np.inf, s_sorted[last]],
    )


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve (trapezoidal; ties count one half).

    Equals the probability that a random member scores above a random non-member
    (Mann-Whitney U / (n_members * n_non_members)).
    """
    curve = roc_curve(scores, labels)
    return float(np.sum(np.diff(curve.fpr) * (curve.tpr[1:] + curve.tpr[:-1]) / 2.0))


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, fpr: float) -> float:
    """The highest TPR among thresholds whose FPR is at most ``fpr``.

    Args:
        scores: ``(n,)`` attack scores, higher = more likely a member.
        labels: ``(n,)`` true membership.
        fpr: The false-positive budget in ``[0, 1]``.

    Returns:
        The TPR of the best threshold within the budget (0 if even the strictest
        threshold that calls anyone a member exceeds it).
    """
    if not 0.0 <= fpr <= 1.0:
        raise RocError(f"fpr must be in [0, 1], got {fpr}")
    curve = roc_curve(scores, labels)
    within = curve.fpr <= fpr + 1e-12
    return float(curve.tpr[within].max())


def fpr_resolution(labels: ArrayLike) -> float:
    """The smallest non-zero FPR measurable with these labels: ``1 / non-members``."""
    y = np.asarray(labels).astype(bool)
    negatives = int((~y).sum())
    if negatives == 0:
        raise RocError("no non-members: FPR is undefined")
    return 1.0 / negatives


def _fpr_key(fpr: float) -> str:
    return f"tpr@{fpr * 100:g}%fpr"


def membership_metrics(
    scores: ArrayLike, labels: ArrayLike, fprs: tuple[float, ...] = DEFAULT_FPRS
) -> dict[str, float]:
    """AUC, TPR at each of ``fprs``, and the resolution those TPRs were measured at.

    Keys: ``auc``; ``tpr@0.1%fpr``-style keys for ``fprs``; ``tpr@0fpr``;
    ``lowest_fpr`` (``1 / non-members``) and ``tpr@lowest_fpr``; ``members`` and
    ``non_members``. A requested FPR below ``lowest_fpr`` is measured as ``tpr@0fpr``.
    """
    s, y = _check(scores, labels)
    metrics = {AUC_KEY: roc_auc(s, y)}
    for fpr in fprs:
        metrics[_fpr_key(fpr)] = tpr_at_fpr(s, y, fpr)
    lowest = fpr_resolution(y)
    metrics[TPR_AT_ZERO_FPR_KEY] = tpr_at_fpr(s, y, 0.0)
    metrics[LOWEST_FPR_KEY] = lowest
    metrics[TPR_AT_LOWEST_FPR_KEY] = tpr_at_fpr(s, y, lowest)
    metrics[MEMBERS_KEY] = float(y.sum())
    metrics[NON_MEMBERS_KEY] = float((~y).sum())
    return metrics
