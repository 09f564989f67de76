"""Stratified k-fold cross-validation of the linear head: accuracy and macro-F1 per fold.

The folds are scikit-learn's ``StratifiedKFold`` (shuffled, seeded): every fold holds
each class in the proportion of the whole, so every class must have at least ``k``
records (:func:`check_folds` says which do not and what to do). Each fold fits a fresh
:class:`~analytics.linear_classifier.LinearClassifier` on the other ``k - 1`` folds
and scores it on the held-out one; the reported numbers are the means over folds.

The L2 setting ``C``: :data:`~analytics.linear_classifier.DEFAULT_C` unless one is
given; :func:`choose_c` picks one from a small grid by an inner cross-validation on the
training part only (nested when used inside :func:`cross_validate`, so the reported
scores stay honest), warm-starting each ``C`` from the previous one's optimum.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

from analytics.linear_classifier import DEFAULT_C, LinearClassifier
from embedding_core.errors import FedembedError
from embedding_core.progress import Progress

__all__ = [
    "C_GRID",
    "CrossValidation",
    "FoldScore",
    "check_folds",
    "choose_c",
    "cross_validate",
    "stratified_folds",
]

logger = logging.getLogger(__name__)

C_GRID: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)
"""The ``C`` values :func:`choose_c` tries (weak to strong fits of unit vectors)."""

_INNER_FOLDS = 3


@dataclass(frozen=True)
class FoldScore:
    """One held-out fold's scores."""

    fold: int
    records: int
    accuracy: float
    macro_f1: float
    c: float


@dataclass(frozen=True)
class CrossValidation:
    """Scores of every fold and their means (and sample standard deviations)."""

    folds: list[FoldScore]
    seed: int
    c_grid: tuple[float, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        """Mean accuracy over the folds."""
        return float(np.mean([f.accuracy for f in self.folds]))

    @property
    def macro_f1(self) -> float:
        """Mean macro-F1 over the folds."""
        return float(np.mean([f.macro_f1 for f in self.folds]))

    @property
    def accuracy_std(self) -> float:
        """Sample standard deviation of the folds' accuracy."""
        return float(np.std([f.accuracy for f in self.folds], ddof=1))

    @property
    def macro_f1_std(self) -> float:
        """Sample standard deviation of the folds' macro-F1."""
        return float(np.std([f.macro_f1 for f in self.folds], ddof=1))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (means, spreads and every fold)."""
        return {
            "folds": len(self.folds),
            "seed": self.seed,
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "macro_f1": self.macro_f1,
            "macro_f1_std": self.macro_f1_std,
            "c_grid": list(self.c_grid) if self.c_grid else None,
            "per_fold": [
                {
                    "fold": f.fold,
                    "records": f.records,
                    "accuracy": f.accuracy,
                    "macro_f1": f.macro_f1,
                    "c": f.c,
                }
                for f in self.folds
            ],
        }


def check_folds(labels: Sequence[str], folds: int, *, flag: str = "--folds") -> None:
    """Refuse ``folds`` that stratified k-fold cannot honour on ``labels``.

    Raises:
        FedembedError: Fewer than 2 folds, fewer than two classes, or a class with fewer
            records than ``folds`` (named, with its count and the two fixes).
    """
    if folds < 2:
        raise FedembedError(
            f"{flag} {folds} leaves nothing to test on",
            expected=f"{flag} 2 or more",
            fix=f"pass {flag} 5 (the default)",
        )
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts), "none")
        raise FedembedError(
            f"the records hold one class only ({only!r}, {len(labels)} records)",
            expected="records of at least two classes in the label column",
            fix="check --label-column names the column holding each record's class",
        )
    small = sorted((n, name) for name, n in counts.items() if n < folds)
    if small:
        named = ", ".join(f"{name!r} ({n})" for n, name in small[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        raise FedembedError(
            f"{len(small)} class(es) have fewer records than {flag} {folds}: {named}{more}",
            expected=f"at least {folds} records of every class, so each fold holds each class",
            fix=(
                f"pass {flag} {small[0][0]} or fewer, or add records of those classes"
                if small[0][0] >= 2
                else "add records of those classes (at least 2 each), or drop them from the file"
            ),
        )


def stratified_folds(labels: Sequence[str], folds: int, *, seed: int) -> list[NDArray[np.intp]]:
    """Held-out record indices of each fold (shuffled with ``seed``, stratified)."""
    check_folds(labels, folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    placeholder = np.zeros(len(labels))
    return [np.asarray(test, dtype=np.intp) for _, test in splitter.split(placeholder, labels)]


def _scores(truth: Sequence[str], predicted: Sequence[str]) -> tuple[float, float]:
    accuracy = float(accuracy_score(truth, predicted))
    macro_f1 = float(f1_score(truth, predicted, average="macro", zero_division=0))
    return accuracy, macro_f1


def choose_c(
    vectors: NDArray[np.floating[Any]],
    labels: Sequence[str],
    *,
    grid: Sequence[float] = C_GRID,
    folds: int = _INNER_FOLDS,
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """The ``C`` of ``grid`` with the best mean macro-F1 over an inner stratified CV.

    Each inner fold walks ``grid`` from the smallest ``C`` up, warm-starting each fit from
    the previous optimum. Ties go to the smaller ``C`` (the stronger penalty).

    Returns:
        The chosen ``C`` and the mean inner macro-F1 of every ``C``.
    """
    ordered = sorted(float(c) for c in grid)
    inner = min(folds, min(Counter(labels).values()))
    if inner < 2:
        logger.warning("choose C: a class has one training record; using C=%g", DEFAULT_C)
        return DEFAULT_C, {}
    labels_array = np.asarray(labels, dtype=str)
    totals = dict.fromkeys(ordered, 0.0)
    for held_out in stratified_folds(labels, inner, seed=seed):
        train = np.ones(len(labels), dtype=bool)
        train[held_out] = False
        previous: LinearClassifier | None = None
        for c in ordered:
            model = LinearClassifier(c=c).fit(
                vectors[train], labels_array[train].tolist(), warm_start=previous
            )
            totals[c] += _scores(labels_array[held_out].tolist(), model.predict(vectors[held_out]))[
                1
            ]
            previous = model
    means = {c: totals[c] / inner for c in ordered}
    best = max(ordered, key=lambda c: (means[c], -c))
    logger.info("choose C: %g (inner macro-F1 %.4f)", best, means[best])
    return best, means


def cross_validate(
    vectors: NDArray[np.floating[Any]],
    labels: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
    c: float | None = DEFAULT_C,
    grid: Sequence[float] = C_GRID,
) -> CrossValidation:
    """Stratified ``folds``-fold scores of the linear head on ``vectors``.

    Args:
        vectors: ``(n, dim)`` record vectors.
        labels: Each record's class.
        folds: How many stratified folds.
        seed: Seed of the fold assignment.
        c: The L2 setting of every fold; ``None`` picks it per fold with
            :func:`choose_c` on that fold's training part (nested CV).
        grid: The ``C`` values tried when ``c`` is ``None``.

    Raises:
        FedembedError: As :func:`check_folds`.
    """
    labels_array = np.asarray(labels, dtype=str)
    held_outs = stratified_folds(labels, folds, seed=seed)
    scores: list[FoldScore] = []
    with Progress(folds, what="cross-validate classifier", unit="folds") as progress:
        for index, held_out in enumerate(held_outs):
            train = np.ones(len(labels), dtype=bool)
            train[held_out] = False
            train_labels = labels_array[train].tolist()
            fold_c = c
            if fold_c is None:
                fold_c, _ = choose_c(vectors[train], train_labels, grid=grid, seed=seed)
            model = LinearClassifier(c=fold_c).fit(vectors[train], train_labels)
            accuracy, macro_f1 = _scores(
                labels_array[held_out].tolist(), model.predict(vectors[held_out])
            )
            scores.append(FoldScore(index, len(held_out), accuracy, macro_f1, fold_c))
            progress.advance()
    result = CrossValidation(scores, seed, tuple(grid) if c is None else None)
    logger.info(
        "cross-validation: %d folds, accuracy %.4f, macro-F1 %.4f",
        folds,
        result.accuracy,
        result.macro_f1,
    )
    return result
