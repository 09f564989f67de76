"""Mahalanobis anomaly score with Ledoit-Wolf shrinkage, against scikit-learn's LedoitWolf."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.covariance import LedoitWolf, ShrunkCovariance
from sklearn.metrics import roc_auc_score

from analytics import MahalanobisAnomalyDetector, ledoit_wolf
from embedding_core.errors import FedembedError


def _data(n: int, d: int, seed: int) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)


def test_shrunk_covariance_equals_scikit_learn() -> None:
    # Prepare: fewer records than twice the dimension, where shrinkage matters
    x = _data(40, 30, seed=0)
    centred = x - x.mean(axis=0)
    reference = LedoitWolf(assume_centered=True).fit(centred)
    # Execute
    covariance, shrinkage = ledoit_wolf(centred)
    # Assert
    assert 0.0 < shrinkage < 1.0
    assert shrinkage == pytest.approx(reference.shrinkage_, rel=1e-9)
    np.testing.assert_allclose(covariance, reference.covariance_, rtol=1e-9, atol=1e-12)


def test_one_class_scores_equal_scikit_learn_mahalanobis() -> None:
    normal = _data(200, 10, seed=1)
    queries = _data(30, 10, seed=2) + 0.5
    reference = LedoitWolf().fit(normal)

    scores = MahalanobisAnomalyDetector(block=7).fit(normal).score(queries)

    np.testing.assert_allclose(scores, reference.mahalanobis(queries), rtol=1e-8)


def test_classes_share_one_covariance_and_score_by_the_nearest_mean() -> None:
    # Prepare: two classes far apart; covariance of the class-centred records
    rng = np.random.default_rng(3)
    a = rng.normal(size=(100, 6)) + 10.0
    b = rng.normal(size=(100, 6)) - 10.0
    normal = np.vstack([a, b])
    labels = ["a"] * 100 + ["b"] * 100
    centred = np.vstack([a - a.mean(axis=0), b - b.mean(axis=0)])
    reference = LedoitWolf(assume_centered=True).fit(centred)
    queries = rng.normal(size=(20, 6)) + 10.0
    # Execute
    scores = MahalanobisAnomalyDetector().fit(normal, labels).score(queries)
    # Assert
    expected = reference.mahalanobis(queries - a.mean(axis=0))
    np.testing.assert_allclose(scores, expected, rtol=1e-8)
    near_b = MahalanobisAnomalyDetector().fit(normal, labels).score(queries - 20.0)
    np.testing.assert_allclose(near_b, reference.mahalanobis(queries - 20.0 - b.mean(axis=0)))


def test_relative_score_subtracts_the_whole_set_distance() -> None:
    # Prepare: scikit-learn's per-class (tied) and whole-set Ledoit-Wolf estimates
    rng = np.random.default_rng(5)
    a = rng.normal(size=(80, 5)) + 3.0
    b = rng.normal(size=(80, 5)) - 3.0
    centred = np.vstack([a - a.mean(axis=0), b - b.mean(axis=0)])
    tied = LedoitWolf(assume_centered=True).fit(centred)
    # the whole set shrunk with the class covariance's intensity (one scale for both)
    whole = ShrunkCovariance(shrinkage=tied.shrinkage_).fit(np.vstack([a, b]))
    queries = rng.normal(size=(15, 5)) * 4.0
    # Execute
    detector = MahalanobisAnomalyDetector(relative=True).fit(
        np.vstack([a, b]), ["a"] * 80 + ["b"] * 80
    )
    scores = detector.score(queries)
    # Assert
    per_class = np.minimum(
        tied.mahalanobis(queries - a.mean(axis=0)), tied.mahalanobis(queries - b.mean(axis=0))
    )
    np.testing.assert_allclose(scores, per_class - whole.mahalanobis(queries), rtol=1e-7, atol=1e-9)
    assert detector.name == "relative-mahalanobis"


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float64)


def test_relative_score_ranks_unknown_classes_first_with_few_records_in_high_dimension() -> None:
    # Prepare: 4 known classes of 50 unit vectors in 384 dimensions (as a node's few
    # labelled records), 2 unknown classes; Ledoit-Wolf shrinks the within-class
    # covariance far more than the whole set's here (the case that inverted the ranking
    # when each Gaussian had its own shrinkage: AUROC 0.0)
    rng = np.random.default_rng(0)
    dim = 384
    centres = _unit(rng.normal(size=(6, dim)))

    def draw(c: int, n: int) -> NDArray[np.float64]:
        low = rng.normal(size=(n, 20)) @ rng.normal(size=(20, dim)) / np.sqrt(20) * 0.5
        spread = _unit(low + rng.normal(size=(n, dim)) * 0.05) * rng.uniform(0.8, 1.2, (n, 1))
        return _unit(centres[c] + 0.6 * spread)

    normal = np.vstack([draw(c, 50) for c in range(4)])
    labels = [str(c) for c in range(4) for _ in range(50)]
    new = np.vstack([draw(c, 40) for c in range(6)])
    unknown = [c >= 4 for c in range(6) for _ in range(40)]
    # Execute
    detector = MahalanobisAnomalyDetector(relative=True).fit(normal, labels)
    auroc = roc_auc_score(unknown, detector.score(new))
    # Assert
    assert detector.shrinkage_ > 0.1
    assert auroc > 0.95


def test_relative_score_needs_labels() -> None:
    with pytest.raises(FedembedError, match="needs the normal records' labels"):
        MahalanobisAnomalyDetector(relative=True).fit(_data(20, 3, seed=6))


@pytest.mark.parametrize("relative", [False, True])
def test_state_round_trip_gives_the_same_scores(relative: bool) -> None:
    normal = _data(50, 5, seed=4)
    detector = MahalanobisAnomalyDetector(relative=relative).fit(normal, ["x", "y"] * 25)

    restored = MahalanobisAnomalyDetector.restore(detector.settings(), detector.state())

    assert restored.classes_ == ["x", "y"]
    np.testing.assert_array_equal(restored.score(normal), detector.score(normal))


def test_one_record_cannot_give_a_covariance() -> None:
    with pytest.raises(FedembedError, match="at least 2 normal records"):
        MahalanobisAnomalyDetector().fit(np.ones((1, 3)))
