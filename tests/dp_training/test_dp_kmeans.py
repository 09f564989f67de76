"""DP federated k-means: calibration, the node and coordinator steps, and an attack on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from analytics.kmeans import centroid_sums
from dp_training.dp_kmeans import (
    DEFAULT_COUNT_WEIGHT,
    assign_corrected,
    calibrate_dp_kmeans,
    kmeans_sensitivity,
    noisy_node_statistics,
    update_from_noisy_sums,
)
from privacy.analysis import PrivacyParameterError
from privacy.analysis.gdp import auc_bound, compose_mu, epsilon_for_mu
from privacy.observers import Observer

DIM, K, NODES = 16, 4, 3


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    raw = rng.normal(size=(n, dim))
    return np.asarray(raw / np.linalg.norm(raw, axis=1, keepdims=True))


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors around K directions (so the clusters are real)."""
    centres = _unit(rng, K) * 3.0
    raw = centres[rng.integers(0, K, n)] + rng.normal(size=(n, DIM))
    return np.asarray(raw / np.linalg.norm(raw, axis=1, keepdims=True))


def _nodes(seed: int = 0, per_node: int = 50) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [_clustered(rng, per_node) for _ in range(NODES)]


# --- calibration ---------------------------------------------------------------------


@pytest.mark.parametrize(("epsilon", "rounds", "weight"), [(8.0, 10, 1.0), (1.0, 3, 0.3)])
def test_calibration_meets_the_target_for_the_fellow_member(
    epsilon: float, rounds: int, weight: float
) -> None:
    # Prepare: the fellow member subtracts its own share, so it faces 2 of 3 shares.
    calibration = calibrate_dp_kmeans(
        epsilon=epsilon, delta=1e-5, rounds=rounds, shares=NODES, count_weight=weight
    )
    member_std = calibration.sum_noise_std * math.sqrt((NODES - 1) / NODES)

    # Execute: compose the rounds' Gaussian mechanisms independently of the module.
    per_round = math.sqrt(1 + weight**2) / member_std
    mu = compose_mu([per_round] * rounds)

    # Assert
    assert epsilon_for_mu(mu=mu, delta=1e-5) == pytest.approx(epsilon, rel=1e-6)
    assert calibration.epsilon_for_observer(Observer.FELLOW_MEMBER) == pytest.approx(epsilon)
    assert calibration.epsilon_for_observer(Observer.COORDINATOR) < epsilon
    assert calibration.noise_std_share == pytest.approx(calibration.sum_noise_std / math.sqrt(3))
    assert calibration.count_noise_std == pytest.approx(calibration.sum_noise_std / weight)


def test_sensitivity_is_attained_by_one_unit_record_and_never_exceeded() -> None:
    # Prepare
    rng = np.random.default_rng(1)
    vectors, centroids = _clustered(rng, 40), _unit(rng, K)
    weight = DEFAULT_COUNT_WEIGHT
    base = noisy_node_statistics(
        vectors, centroids, noise_std_share=0.0, rng=rng, count_weight=weight
    )
    moves = []
    # Execute: add one record, unit or far longer (the node step scales it to norm 1).
    for scale in (1.0, 1.0, 5.0, 0.5):
        extra = _unit(rng, 1) * scale
        grown = noisy_node_statistics(
            np.vstack([vectors, extra]), centroids, noise_std_share=0.0, rng=rng
        )
        delta = np.concatenate(
            [(grown.sums - base.sums).ravel(), weight * (grown.counts - base.counts)]
        )
        moves.append(float(np.linalg.norm(delta)))

    # Assert
    bound = kmeans_sensitivity(weight)
    assert bound == pytest.approx(math.sqrt(1 + weight**2))
    assert kmeans_sensitivity(1.0) == pytest.approx(math.sqrt(2))
    assert max(moves) <= bound + 1e-12
    assert moves[0] == pytest.approx(bound)
    assert moves[3] < bound


def test_calibration_refuses_bad_parameters() -> None:
    with pytest.raises(PrivacyParameterError, match="rounds"):
        calibrate_dp_kmeans(epsilon=8.0, delta=1e-5, rounds=0, shares=3)
    with pytest.raises(PrivacyParameterError, match="count_weight"):
        calibrate_dp_kmeans(epsilon=8.0, delta=1e-5, rounds=5, shares=3, count_weight=0.0)
    with pytest.raises(PrivacyParameterError, match="epsilon"):
        calibrate_dp_kmeans(epsilon=-1.0, delta=1e-5, rounds=5, shares=3)


# --- node and coordinator steps ------------------------------------------------------


def test_noise_free_node_statistics_add_up_to_the_pooled_ones() -> None:
    # Prepare
    nodes = _nodes()
    centroids = _unit(np.random.default_rng(2), K)
    corrections = np.array([0.0, 0.3, 0.1, 0.0])
    pooled = np.vstack(nodes)

    # Execute
    parts = [
        noisy_node_statistics(v, centroids, noise_std_share=0.0, rng=np.random.default_rng(0))
        for v in nodes
    ]
    corrected = [
        noisy_node_statistics(
            v,
            centroids,
            noise_std_share=0.0,
            rng=np.random.default_rng(0),
            corrections=corrections,
        )
        for v in nodes
    ]

    # Assert: equal to analytics' pooled step, and to a brute-force corrected assignment.
    sums, counts = centroid_sums(pooled, centroids)
    np.testing.assert_allclose(sum(p.sums for p in parts), sums, atol=1e-12)
    np.testing.assert_array_equal(sum(p.counts for p in parts), counts)
    labels = [
        int(
            np.argmin(
                [np.sum((x - c) ** 2) - b for c, b in zip(centroids, corrections, strict=True)]
            )
        )
        for x in pooled
    ]
    np.testing.assert_array_equal(assign_corrected(pooled, centroids, corrections), labels)
    expected_sums = np.array([pooled[np.array(labels) == j].sum(axis=0) for j in range(K)])
    np.testing.assert_allclose(sum(p.sums for p in corrected), expected_sums, atol=1e-12)


def test_noise_of_the_secure_sum_matches_the_calibration() -> None:
    # Prepare
    nodes = _nodes(seed=5, per_node=20)
    centroids = _unit(np.random.default_rng(6), K)
    calibration = calibrate_dp_kmeans(epsilon=4.0, delta=1e-5, rounds=5, shares=NODES)
    exact_sums, exact_counts = centroid_sums(np.vstack(nodes), centroids)
    rng = np.random.default_rng(7)
    sum_noise, count_noise, member_noise = [], [], []

    # Execute: 300 rounds' secure sums; the fellow member (node 2) removes its own part.
    for _ in range(300):
        parts = [
            noisy_node_statistics(
                v,
                centroids,
                noise_std_share=calibration.noise_std_share,
                rng=rng,
                count_weight=calibration.count_weight,
            )
            for v in nodes
        ]
        total = sum(p.sums for p in parts)
        sum_noise.append(total - exact_sums)
        count_noise.append(sum(p.counts for p in parts) - exact_counts)
        own_sums, _ = centroid_sums(nodes[2], centroids)
        member_noise.append(total - exact_sums - (parts[2].sums - own_sums))

    # Assert: 19,200 sum and 1,200 count draws: std within 4% and 8% (> 5 standard errors).
    assert np.std(sum_noise) == pytest.approx(calibration.sum_noise_std, rel=0.04)
    assert np.std(count_noise) == pytest.approx(calibration.count_noise_std, rel=0.08)
    assert np.std(member_noise) == pytest.approx(
        calibration.sum_noise_std * math.sqrt(2 / 3), rel=0.04
    )
    assert abs(float(np.mean(sum_noise))) < 0.05 * calibration.sum_noise_std


def test_coordinator_keeps_centroids_whose_noisy_count_is_small_or_negative() -> None:
    # Prepare
    previous = _unit(np.random.default_rng(8), K)
    sums = np.ones((K, DIM)) * 2.0
    counts = np.array([40.0, 3.0, -2.0, 10.0])

    # Execute
    update = update_from_noisy_sums(sums, counts, previous, min_count=5.0, sum_noise_std=1.5)

    # Assert
    np.testing.assert_array_equal(update.kept_previous, [False, True, True, False])
    np.testing.assert_array_equal(update.centroids[1:3], previous[1:3])
    np.testing.assert_allclose(update.centroids[0], sums[0] / 40.0)
    excess = DIM * 1.5**2 / np.array([40.0, 10.0]) ** 2
    squared = np.sum((sums[[0, 3]] / np.array([[40.0], [10.0]])) ** 2, axis=1)
    np.testing.assert_allclose(update.corrections[[0, 3]], np.minimum(excess, squared))
    np.testing.assert_array_equal(update.corrections[1:3], 0.0)
    with pytest.raises(ValueError, match="same k centroids"):
        update_from_noisy_sums(sums, counts[:2], previous)


# --- membership attack ---------------------------------------------------------------


def test_likelihood_ratio_attack_stays_under_the_gdp_auc_bound() -> None:
    """The best attack on one record knows every other record and the public centroids.

    Over ``ROUNDS`` rounds it sums, per round, the log-likelihood ratio of its view
    (the secure sum, minus its own share for the fellow member) between the datasets
    with and without the target record: the Neyman-Pearson optimal test, whose AUC the
    calibration bounds by ``Phi(mu / sqrt 2)``; a unit record attains it.
    """
    # Prepare
    rounds, trials, epsilon = 2, 500, 2.0
    calibration = calibrate_dp_kmeans(epsilon=epsilon, delta=1e-5, rounds=rounds, shares=NODES)
    weight, std = calibration.count_weight, calibration.sum_noise_std
    nodes = _nodes(seed=9, per_node=15)
    target = _unit(np.random.default_rng(10), 1)
    initial = _unit(np.random.default_rng(11), K)
    rng = np.random.default_rng(12)
    scores: dict[str, list[float]] = {"member": [], "coordinator": []}
    labels: list[int] = []

    # Execute
    for trial in range(trials * 2):
        present = trial % 2
        data = [np.vstack([nodes[0], target]) if present else nodes[0], *nodes[1:]]
        centroids, llr = initial, {"member": 0.0, "coordinator": 0.0}
        for _ in range(rounds):
            parts = [
                noisy_node_statistics(
                    v, centroids, noise_std_share=calibration.noise_std_share, rng=rng,
                    count_weight=weight,
                )
                for v in data
            ]  # fmt: skip
            total_sums = np.sum([p.sums for p in parts], axis=0)
            total_counts = np.sum([p.counts for p in parts], axis=0)
            without = [nodes[0], *nodes[1:]]
            out_sums, out_counts = centroid_sums(np.vstack(without), centroids)
            in_sums, in_counts = centroid_sums(np.vstack([*without, target]), centroids)
            own_sums, own_counts = centroid_sums(nodes[2], centroids)
            views = {
                "coordinator": (total_sums, total_counts, std**2),
                "member": (
                    total_sums - (parts[2].sums - own_sums),
                    total_counts - (parts[2].counts - own_counts),
                    std**2 * (NODES - 1) / NODES,
                ),
            }
            for name, (sums, counts, variance) in views.items():
                llr[name] += (
                    np.sum((sums - out_sums) * (in_sums - out_sums))
                    + weight**2 * np.sum((counts - out_counts) * (in_counts - out_counts))
                ) / variance
            centroids = update_from_noisy_sums(total_sums, total_counts, centroids).centroids
        labels.append(present)
        for name in scores:
            scores[name].append(llr[name])

    # Assert: 500 trials per side, AUC standard error about 0.013; margin 0.04.
    member_auc = roc_auc_score(labels, scores["member"])
    member_bound = auc_bound(mu=calibration.mu_for_observer(Observer.FELLOW_MEMBER))
    assert member_auc <= member_bound + 0.04
    assert member_auc >= member_bound - 0.04  # the attack is the optimal one: bound is tight
    coordinator_auc = roc_auc_score(labels, scores["coordinator"])
    assert coordinator_auc <= auc_bound(mu=calibration.mu_for_observer(Observer.COORDINATOR)) + 0.04
