"""k-NN anomaly score: equal to scikit-learn's cosine neighbours, higher off the normal set."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.neighbors import NearestNeighbors

from analytics import KnnAnomalyDetector, nearest_normal
from embedding_core.errors import FedembedError


def _unit(n: int, d: int, seed: int) -> NDArray[np.float32]:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_neighbours_equal_scikit_learn_cosine_neighbours() -> None:
    # Prepare: queries in several blocks (block=7) against an unnormalised normal set
    normal = 3.0 * _unit(60, 16, seed=0)
    queries = _unit(25, 16, seed=1)
    reference = NearestNeighbors(n_neighbors=5, metric="cosine", algorithm="brute").fit(normal)
    # Execute
    indices, sims = nearest_normal(queries, normal, 5, block=7)
    # Assert
    distances, expected = reference.kneighbors(queries)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(1.0 - sims, distances, atol=1e-5)


@pytest.mark.parametrize("aggregate", ["mean", "kth"])
def test_scores_are_the_mean_or_kth_scikit_learn_distance(aggregate: str) -> None:
    normal = _unit(80, 12, seed=2)
    queries = _unit(30, 12, seed=3)
    distances, _ = (
        NearestNeighbors(n_neighbors=4, metric="cosine", algorithm="brute")
        .fit(normal)
        .kneighbors(queries)
    )

    scores = KnnAnomalyDetector(k=4, aggregate=aggregate, block=8).fit(normal).score(queries)  # type: ignore[arg-type]

    expected = distances.mean(axis=1) if aggregate == "mean" else distances[:, -1]
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_far_records_score_higher_than_records_of_the_normal_clusters() -> None:
    # Prepare: normal records around 5 centres; anomalies around 5 other centres
    centres = _unit(10, 32, seed=4)
    rng = np.random.default_rng(5)
    normal = centres[rng.integers(0, 5, 300)] + 0.3 * rng.normal(size=(300, 32)) / np.sqrt(32)
    near = centres[rng.integers(0, 5, 50)] + 0.3 * rng.normal(size=(50, 32)) / np.sqrt(32)
    far = centres[rng.integers(5, 10, 50)] + 0.3 * rng.normal(size=(50, 32)) / np.sqrt(32)
    detector = KnnAnomalyDetector(k=5).fit(normal)
    # Execute
    near_scores, far_scores = detector.score(near), detector.score(far)
    # Assert
    assert far_scores.min() > near_scores.max()


def test_k_equal_to_the_normal_set_uses_every_record() -> None:
    normal = _unit(6, 8, seed=6)

    indices, _ = nearest_normal(_unit(3, 8, seed=7), normal, 6)

    assert sorted(indices[0].tolist()) == list(range(6))


def test_state_round_trip_gives_the_same_scores() -> None:
    detector = KnnAnomalyDetector(k=3, aggregate="kth").fit(_unit(20, 8, seed=8))
    queries = _unit(5, 8, seed=9)

    restored = KnnAnomalyDetector.restore(detector.settings(), detector.state())

    np.testing.assert_array_equal(restored.score(queries), detector.score(queries))


def test_k_larger_than_the_normal_set_is_refused() -> None:
    with pytest.raises(FedembedError, match=r"k=11 is larger than the normal set \(10 records\)"):
        KnnAnomalyDetector(k=11).fit(_unit(10, 4, seed=0))


def test_mismatched_dimensions_are_refused() -> None:
    detector = KnnAnomalyDetector(k=2).fit(_unit(10, 4, seed=0))

    with pytest.raises(FedembedError, match="one encoder space"):
        detector.score(_unit(3, 5, seed=1))
