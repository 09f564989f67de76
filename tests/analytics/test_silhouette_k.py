"""Choosing k by silhouette on a sample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from analytics.silhouette_k import choose_k, sample_silhouette


@pytest.mark.parametrize("centers", [3, 6])
def test_separated_blobs_give_their_number_of_clusters(centers: int) -> None:
    vectors, _ = make_blobs(n_samples=600, centers=centers, n_features=8, cluster_std=0.6,
                            random_state=centers)  # fmt: skip

    choice = choose_k(vectors, (2, 9), sample_size=300, seed=0)

    assert choice.k == centers
    assert choice.sample_size == 300
    assert sorted(choice.scores) == list(range(2, 10))
    assert choice.scores[centers] == max(choice.scores.values())


def test_the_range_is_capped_by_the_sample() -> None:
    vectors, _ = make_blobs(n_samples=6, centers=2, n_features=3, random_state=0)

    choice = choose_k(vectors, (2, 30))

    assert max(choice.scores) == 5


def test_sample_silhouette_is_scikit_learns_on_small_sets_and_skips_noise() -> None:
    vectors, labels = make_blobs(n_samples=200, centers=3, n_features=4, random_state=1)
    noisy = labels.copy()
    noisy[:20] = -1

    whole = sample_silhouette(vectors, labels, sample_size=500)
    without_noise = sample_silhouette(vectors, noisy, sample_size=500)

    assert whole == pytest.approx(silhouette_score(vectors, labels))
    assert without_noise == pytest.approx(silhouette_score(vectors[20:], labels[20:]))
    assert sample_silhouette(vectors, np.zeros(200, dtype=np.int64)) is None


@pytest.mark.parametrize(("k_range", "message"), [((1, 5), "2 <= low"), ((6, 4), "2 <= low")])
def test_bad_ranges_are_refused(k_range: tuple[int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        choose_k(np.zeros((20, 2)), k_range)


def test_too_few_vectors_for_the_range_is_refused() -> None:
    with pytest.raises(ValueError, match="need at least 6 vectors"):
        choose_k(np.random.default_rng(0).normal(size=(4, 2)), (5, 8))
