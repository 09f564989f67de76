"""WEAT/SEAT statistics: golden values, brute-force p-values, Monte Carlo, Holm."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from attacks.bias_weat import (
    association,
    effect_size,
    holm_bonferroni,
    permutation_test,
    weat,
    weat_statistic,
)

# Tiny 2-D case: A = {e1}, B = {e2}, so s(w) = cos(w, e1) - cos(w, e2) = w1 - w2 for unit w.
# X = {e1, (e1 + e2)/sqrt2} -> s = {1, 0};  Y = {e2, -e1} -> s = {-1, -1}.
# mean_X - mean_Y = 0.5 - (-1) = 1.5; pooled {1, 0, -1, -1}: mean -0.25,
# squared deviations 1.5625 + 0.0625 + 0.5625 + 0.5625 = 2.75.
_X = np.array([[3.0, 0.0], [2.0, 2.0]])  # lengths deliberately not 1
_Y = np.array([[0.0, 0.5], [-4.0, 0.0]])
_A = np.array([[1.0, 0.0]])
_B = np.array([[0.0, 7.0]])
GOLDEN_S_X = [1.0, 0.0]
GOLDEN_S_Y = [-1.0, -1.0]
GOLDEN_EFFECT_SAMPLE = 1.5 / math.sqrt(2.75 / 3)  # = 1.5666989...
GOLDEN_EFFECT_POPULATION = 6 / math.sqrt(11)  # = 1.5 / sqrt(2.75 / 4) = 1.8090680...
GOLDEN_STATISTIC = 3.0
# Partitions of {1, 0, -1, -1} into pairs: X_i sums 1, 0, 0, -1, -1, -2; only the
# observed one reaches 1, so p = 1/6.
GOLDEN_P = 1 / 6


def test_association_matches_hand_computed_values() -> None:
    # Prepare / Execute
    s_x = association(_X, _A, _B)
    s_y = association(_Y, _A, _B)

    # Assert
    np.testing.assert_allclose(s_x, GOLDEN_S_X, atol=1e-12)
    np.testing.assert_allclose(s_y, GOLDEN_S_Y, atol=1e-12)


def test_weat_golden_effect_size_statistic_and_p_value() -> None:
    # Execute
    sample = weat(_X, _Y, _A, _B)
    population = weat(_X, _Y, _A, _B, ddof=0)

    # Assert
    assert sample.effect_size == pytest.approx(GOLDEN_EFFECT_SAMPLE, abs=1e-12)
    assert population.effect_size == pytest.approx(GOLDEN_EFFECT_POPULATION, abs=1e-12)
    assert sample.statistic == pytest.approx(GOLDEN_STATISTIC, abs=1e-12)
    assert sample.p_value == pytest.approx(GOLDEN_P, abs=1e-12)
    assert (sample.method, sample.n_partitions, sample.n_permutations) == ("exact", 6, 6)
    assert (sample.ddof, population.ddof) == (1, 0)


@given(
    s=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=4, max_size=40),
    split=st.floats(0.1, 0.9),
)
def test_effect_size_conventions_differ_by_sqrt_n_over_n_minus_1(
    s: list[float], split: float
) -> None:
    # Prepare
    values = np.asarray(s)
    k = min(max(1, round(split * values.size)), values.size - 1)
    assume(np.std(values) > 1e-6)

    # Execute
    sample = effect_size(values[:k], values[k:], ddof=1)
    population = effect_size(values[:k], values[k:], ddof=0)

    # Assert
    n = values.size
    assert population == pytest.approx(sample * math.sqrt(n / (n - 1)), rel=1e-9, abs=1e-12)


def _brute_force_p(s_x: list[float], s_y: list[float]) -> float:
    """Enumerate every |X|-subset of X u Y and apply the WEAT statistic's definition."""
    pooled = s_x + s_y
    observed = sum(s_x) - sum(s_y)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(s_x)):
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        stat = sum(pooled[i] for i in chosen) - sum(rest)
        hits += stat >= observed
        total += 1
    return hits / total


@settings(max_examples=60, deadline=None)
@given(
    s_x=st.lists(st.integers(-8, 8), min_size=1, max_size=6),
    s_y=st.lists(st.integers(-8, 8), min_size=1, max_size=6),
)
def test_exact_p_value_equals_brute_force_enumeration(s_x: list[int], s_y: list[int]) -> None:
    # Prepare: quarter-integers are exact in binary, so ties are real ties.
    x = [v / 4 for v in s_x]
    y = [v / 4 for v in s_y]

    # Execute
    result = permutation_test(np.asarray(x), np.asarray(y))

    # Assert
    assert result.method == "exact"
    assert result.n_partitions == math.comb(len(x) + len(y), len(x))
    assert result.p_value == pytest.approx(_brute_force_p(x, y), abs=1e-12)


def test_exact_p_value_on_random_reals_equals_brute_force() -> None:
    # Prepare
    rng = np.random.default_rng(7)
    s_x = list(rng.normal(0.3, 1.0, size=6))
    s_y = list(rng.normal(0.0, 1.0, size=7))

    # Execute
    result = permutation_test(np.asarray(s_x), np.asarray(s_y))

    # Assert
    assert result.method == "exact"
    assert result.n_permutations == math.comb(13, 6)
    assert result.p_value == pytest.approx(_brute_force_p(s_x, s_y), abs=1e-12)


def test_monte_carlo_is_within_sampling_error_of_exact_and_seeded() -> None:
    # Prepare: C(20, 10) = 184,756 partitions; a shift puts p around a few percent.
    rng = np.random.default_rng(3)
    s_x = rng.normal(0.5, 1.0, size=10)
    s_y = rng.normal(0.0, 1.0, size=10)
    n_samples = 20_000

    # Execute
    exact = permutation_test(s_x, s_y, exact_limit=200_000)
    mc = permutation_test(s_x, s_y, exact_limit=0, n_samples=n_samples, seed=11)
    again = permutation_test(s_x, s_y, exact_limit=0, n_samples=n_samples, seed=11)

    # Assert
    assert exact.method == "exact"
    assert exact.n_permutations == 184_756
    assert 0.005 < exact.p_value < 0.5  # a case where sampling error is visible
    assert (mc.method, mc.n_permutations, mc.n_partitions) == ("monte_carlo", n_samples, 184_756)
    standard_error = math.sqrt(exact.p_value * (1 - exact.p_value) / n_samples)
    assert abs(mc.p_value - exact.p_value) < 5 * standard_error
    assert again.p_value == mc.p_value


def test_monte_carlo_p_value_is_never_zero() -> None:
    # Prepare: X all far above Y; no random partition reaches the observed sum.
    s_x = np.full(30, 1.0)
    s_y = np.full(30, -1.0)

    # Execute
    result = permutation_test(s_x, s_y, n_samples=999)

    # Assert
    assert result.method == "monte_carlo"
    assert result.p_value == pytest.approx(1 / 1000)


def test_statistic_is_sum_difference() -> None:
    assert weat_statistic(np.array([0.5, 0.25]), np.array([-0.25])) == pytest.approx(1.0)


def test_holm_bonferroni_hand_computed() -> None:
    # Prepare: sorted 0.005, 0.01, 0.03, 0.04 with multipliers 4, 3, 2, 1
    #   -> 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06.
    p = [0.01, 0.04, 0.03, 0.005]

    # Execute
    adjusted, reject = holm_bonferroni(p, alpha=0.05)

    # Assert
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], atol=1e-15)
    assert reject.tolist() == [True, False, False, True]


def _holm_sequential(p: list[float], alpha: float) -> list[bool]:
    """Holm's rule as stated in the paper: reject in ascending order until one fails."""
    m = len(p)
    reject = [False] * m
    for rank, index in enumerate(sorted(range(m), key=lambda i: p[i])):
        if p[index] > alpha / (m - rank):
            break
        reject[index] = True
    return reject


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.sampled_from([0.01, 0.05]))
def test_holm_rejections_match_the_sequential_rule(p: list[float], alpha: float) -> None:
    # Execute
    adjusted, reject = holm_bonferroni(p, alpha=alpha)

    # Assert
    assert np.all(adjusted >= np.asarray(p))
    assert np.all(adjusted <= 1.0)
    assert reject.tolist() == _holm_sequential(p, alpha)


def test_holm_agrees_with_statsmodels_when_installed() -> None:
    multitest = pytest.importorskip(
        "statsmodels.stats.multitest", reason="statsmodels not installed (optional check)"
    )
    p = np.random.default_rng(5).uniform(0, 0.2, size=25)
    reject_ref, adjusted_ref, _, _ = multitest.multipletests(p, alpha=0.05, method="holm")

    adjusted, reject = holm_bonferroni(p)

    np.testing.assert_allclose(adjusted, adjusted_ref, atol=1e-12)
    assert reject.tolist() == list(reject_ref)


@pytest.mark.parametrize(
    ("s_x", "s_y", "message"),
    [
        ([0.5, 0.5], [0.5, 0.5], "equal"),
        ([], [0.5], "at least one"),
        ([0.5], [0.2], "too few"),
    ],
)
def test_effect_size_rejects_degenerate_input(
    s_x: list[float], s_y: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        effect_size(np.asarray(s_x), np.asarray(s_y), ddof=1 if message != "too few" else 2)


def test_association_rejects_zero_vectors() -> None:
    with pytest.raises(ValueError, match="zero"):
        association(np.zeros((1, 2)), _A, _B)
