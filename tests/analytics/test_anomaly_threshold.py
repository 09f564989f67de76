"""Threshold at a target false-positive rate, calibrated out of sample; AUROC; rates."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from analytics import (
    KnnAnomalyDetector,
    MahalanobisAnomalyDetector,
    anomaly_auroc,
    calibrate_threshold,
    conformal_threshold,
    min_calibration_records,
    rates_at_threshold,
)
from embedding_core.errors import FedembedError

CENTRES = np.random.default_rng(99).normal(size=(8, 32))


def _normal(n: int, seed: int) -> NDArray[np.float64]:
    """Records of a fixed 8-cluster distribution on the sphere."""
    rng = np.random.default_rng(seed)
    x = CENTRES[rng.integers(0, 8, n)] + 0.7 * rng.normal(size=(n, 32))
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))


def test_auroc_equals_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=300) + truth, 1)  # rounded: many ties

    assert anomaly_auroc(scores, truth) == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)


def test_auroc_is_none_with_one_kind_only() -> None:
    assert anomaly_auroc(np.arange(4.0), [False] * 4) is None


def test_conformal_threshold_is_the_ceil_n_plus_one_quantile() -> None:
    scores = np.arange(1.0, 100.0)  # 99 scores 1..99

    threshold = conformal_threshold(scores[::-1], 0.05)

    assert threshold == 95.0  # ceil(100 * 0.95) = 95th smallest
    assert np.mean(scores > threshold) <= 0.05


def test_too_few_calibration_scores_for_the_rate_are_refused() -> None:
    assert min_calibration_records(0.05) == 19
    with pytest.raises(FedembedError, match="at least 19 normal records"):
        conformal_threshold(np.arange(18.0), 0.05)


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5])
def test_a_target_fpr_outside_zero_one_is_refused(rate: float) -> None:
    with pytest.raises(FedembedError, match="strictly between 0 and 1"):
        calibrate_threshold(KnnAnomalyDetector, _normal(50, 0), rate)


def test_calibration_scores_come_from_detectors_that_did_not_fit_them() -> None:
    # A 1-NN detector scores its own records 0: out-of-sample scores are all positive
    normal = _normal(100, 1)

    calibration = calibrate_threshold(lambda: KnnAnomalyDetector(k=1), normal, 0.1, seed=3)

    assert sorted(calibration.indices.tolist()) == list(range(100))
    assert calibration.scores.min() > 1e-3
    assert calibration.method == "crossfit-5"
    assert calibration.calibration_fpr <= 0.1


@pytest.mark.parametrize(
    ("make", "folds", "low", "high"),
    [
        (lambda: KnnAnomalyDetector(k=10), 5, 0.03, 0.065),
        (MahalanobisAnomalyDetector, 5, 0.03, 0.07),
        (lambda: KnnAnomalyDetector(k=10), 1, 0.025, 0.075),
    ],
    ids=["knn-crossfit", "mahalanobis-crossfit", "knn-split"],
)
def test_fpr_on_fresh_normal_records_is_near_the_target(
    make: object, folds: int, low: float, high: float
) -> None:
    # Prepare: 4 seeded repeats; 2,000 normal records, 4,000 fresh ones of the same law.
    # Expected mean 0.05 (cross-fitting errs a little low); sd of the mean ~0.004.
    reached = []
    for seed in range(4):
        normal = _normal(2000, seed)
        fresh = _normal(4000, 100 + seed)
        # Execute
        calibration = calibrate_threshold(make, normal, 0.05, folds=folds, seed=seed)  # type: ignore[arg-type]
        fitted = normal if folds > 1 else np.delete(normal, calibration.indices, axis=0)
        scores = make().fit(fitted).score(fresh)  # type: ignore[operator]
        reached.append(rates_at_threshold(scores, [False] * 4000, calibration.threshold).fpr)
    # Assert
    assert low < float(np.mean(reached)) < high


def test_rates_count_flagged_normals_and_anomalies() -> None:
    scores = np.array([0.1, 0.5, 0.9, 0.2, 0.8])
    truth = [False, False, True, True, True]

    rates = rates_at_threshold(scores, truth, 0.45)

    assert rates.fpr == pytest.approx(0.5)
    assert rates.detection_rate == pytest.approx(2 / 3)
    assert (rates.flagged, rates.anomalies, rates.normals) == (3, 3, 2)
    assert rates_at_threshold(scores, [False] * 5, 0.45).detection_rate is None
