"""ROC, AUC and TPR at fixed FPR against sklearn and hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from attacks.roc import (
    RocError,
    fpr_resolution,
    membership_metrics,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)

_records = st.lists(
    st.tuples(st.integers(min_value=-5, max_value=5), st.booleans()), min_size=2, max_size=60
).filter(lambda rows: 0 < sum(label for _, label in rows) < len(rows))


@settings(max_examples=100, deadline=None)
@given(_records)
def test_auc_matches_sklearn_with_ties(rows: list[tuple[int, bool]]) -> None:
    # Prepare: integer scores in a small range, so ties are common.
    scores = np.array([s for s, _ in rows], dtype=np.float64)
    labels = np.array([y for _, y in rows])
    # Execute
    auc = roc_auc(scores, labels)
    # Assert
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(_records)
def test_curve_points_match_sklearn(rows: list[tuple[int, bool]]) -> None:
    scores = np.array([s for s, _ in rows], dtype=np.float64)
    labels = np.array([y for _, y in rows])
    curve = roc_curve(scores, labels)
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)


def test_auc_hand_examples() -> None:
    # Members at ranks 1 and 3 of 4: 3 of the 4 (member, non-member) pairs are ordered.
    assert roc_auc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.75)
    assert roc_auc([3.0, 2.0, 1.0], [1, 1, 0]) == pytest.approx(1.0)
    assert roc_auc([1.0, 2.0, 3.0], [1, 1, 0]) == pytest.approx(0.0)
    # All tied: every pair counts one half.
    assert roc_auc([1.0, 1.0, 1.0, 1.0], [1, 0, 1, 0]) == pytest.approx(0.5)


def test_tpr_at_fpr_constructed() -> None:
    # Prepare: 10 members, 10 non-members. From the top: 3 members, 1 non-member,
    # 3 members, 1 non-member, then the rest interleaved.
    order = [1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    scores = np.arange(len(order), 0, -1, dtype=np.float64)
    labels = np.array(order, dtype=bool)
    # Execute / Assert: before any non-member 3/10; one non-member allowed (FPR 0.1) 6/10.
    assert tpr_at_fpr(scores, labels, 0.0) == pytest.approx(0.3)
    assert tpr_at_fpr(scores, labels, 0.05) == pytest.approx(0.3)
    assert tpr_at_fpr(scores, labels, 0.1) == pytest.approx(0.6)
    assert tpr_at_fpr(scores, labels, 0.2) == pytest.approx(0.7)
    assert tpr_at_fpr(scores, labels, 1.0) == pytest.approx(1.0)


def test_membership_metrics_reports_resolution() -> None:
    order = [1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    scores = np.arange(len(order), 0, -1, dtype=np.float64)
    labels = np.array(order, dtype=bool)
    metrics = membership_metrics(scores, labels)
    assert metrics["lowest_fpr"] == pytest.approx(0.1) == fpr_resolution(labels)
    # 0.1% and 1% FPR are below the resolution of 10 non-members: measured at FPR 0.
    assert metrics["tpr@0.1%fpr"] == metrics["tpr@1%fpr"] == metrics["tpr@0fpr"] == 0.3
    assert metrics["tpr@lowest_fpr"] == pytest.approx(0.6)
    assert metrics["members"] == 10
    assert metrics["non_members"] == 10


@pytest.mark.parametrize(
    ("scores", "labels"),
    [
        ([0.1, 0.2], [1, 1]),
        ([0.1, 0.2], [0, 0]),
        ([0.1, np.nan], [0, 1]),
        ([0.1, 0.2, 0.3], [0, 1]),
        ([0.1, 0.2], [0, 2]),
    ],
)
def test_bad_inputs_raise(scores: list[float], labels: list[int]) -> None:
    with pytest.raises(RocError):
        roc_auc(scores, labels)


def test_fpr_out_of_range_raises() -> None:
    with pytest.raises(RocError):
        tpr_at_fpr([0.1, 0.2], [0, 1], 1.5)
