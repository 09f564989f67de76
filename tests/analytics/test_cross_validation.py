"""Stratified k-fold scores of the linear head, checked against scikit-learn."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

from analytics.cross_validation import (
    C_GRID,
    check_folds,
    choose_c,
    cross_validate,
    stratified_folds,
)
from embedding_core.errors import FedembedError


def _blobs(n: int, classes: int, dim: int, *, seed: int) -> tuple[NDArray[np.float64], list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    which = rng.integers(0, classes, n)
    x = centres[which] + 1.5 * rng.normal(size=(n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), [f"c{c}" for c in which]


def test_folds_partition_the_records_and_keep_class_shares() -> None:
    # Prepare
    _, y = _blobs(300, 4, 4, seed=0)
    # Execute
    folds = stratified_folds(y, 5, seed=1)
    # Assert
    joined = np.sort(np.concatenate(folds))
    assert np.array_equal(joined, np.arange(300))
    totals = Counter(y)
    for held_out in folds:
        counts = Counter(y[i] for i in held_out)
        for name, total in totals.items():
            assert abs(counts[name] - total / 5) <= 1
    assert all(
        np.array_equal(a, b) for a, b in zip(folds, stratified_folds(y, 5, seed=1), strict=True)
    )
    assert not all(
        np.array_equal(a, b) for a, b in zip(folds, stratified_folds(y, 5, seed=2), strict=True)
    )


def test_scores_equal_scikit_learn_on_the_same_folds() -> None:
    # Prepare
    x, y = _blobs(300, 4, 12, seed=3)
    labels = np.array(y)
    # Execute
    result = cross_validate(x, y, folds=4, seed=7, c=2.0)
    # Assert: scikit-learn's StratifiedKFold and LogisticRegression at the same C and seed
    splitter = StratifiedKFold(n_splits=4, shuffle=True, random_state=7)
    accuracies, f1s = [], []
    for train, test in splitter.split(x, labels):
        model = LogisticRegression(C=2.0, max_iter=1000).fit(x[train], labels[train])
        predicted = model.predict(x[test])
        accuracies.append(accuracy_score(labels[test], predicted))
        f1s.append(f1_score(labels[test], predicted, average="macro"))
    assert [f.accuracy for f in result.folds] == pytest.approx(accuracies, abs=0.011)
    assert result.accuracy == pytest.approx(np.mean(accuracies), abs=0.005)
    assert result.macro_f1 == pytest.approx(np.mean(f1s), abs=0.005)
    assert 0.4 < result.accuracy < 1.0  # neither chance (0.25) nor trivially separable
    assert sum(f.records for f in result.folds) == 300
    assert result.as_dict()["folds"] == 4


def test_a_class_smaller_than_the_folds_is_named_with_the_fix() -> None:
    labels = ["a"] * 10 + ["b"] * 10 + ["rare"] * 3

    with pytest.raises(FedembedError) as raised:
        check_folds(labels, 5)

    message = str(raised.value)
    assert "'rare' (3)" in message
    assert "--folds 3" in message
    assert "\n" not in message


def test_one_class_and_too_few_folds_are_refused() -> None:
    with pytest.raises(FedembedError, match="one class only"):
        check_folds(["a"] * 10, 5)
    with pytest.raises(FedembedError, match="--folds 2 or more"):
        check_folds(["a", "b"] * 10, 1)


def test_choose_c_returns_the_grid_value_with_the_best_inner_macro_f1() -> None:
    x, y = _blobs(240, 3, 8, seed=4)

    best, means = choose_c(x, y, seed=0)

    assert set(means) == set(C_GRID)
    assert best in C_GRID
    assert means[best] == max(means.values())
    assert choose_c(x, y, seed=0) == (best, means)


def test_nested_cross_validation_records_each_fold_s_choice() -> None:
    x, y = _blobs(150, 3, 8, seed=5)

    result = cross_validate(x, y, folds=3, seed=0, c=None, grid=(0.1, 10.0))

    assert {f.c for f in result.folds} <= {0.1, 10.0}
    assert result.as_dict()["c_grid"] == [0.1, 10.0]
