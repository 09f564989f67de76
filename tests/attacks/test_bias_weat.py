"""WEAT/SEAT statistics: golden values, brute-force p-values (two- and one-sided), power, Holm."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from attacks.bias_permutation import (
    DEFAULT_EXACT_LIMIT,
    Alternative,
    count_subset_sums,
    permutation_test,
    smallest_p_value,
)
from attacks.bias_weat import (
    association,
    effect_size,
    holm_bonferroni,
    holm_power,
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
# observed one reaches 1, so the one-sided p = 1/6. Two-sided: the null mean of the sum is
# k T / N = 2 (-1) / 4 = -0.5; |sum - (-0.5)| is 1.5, .5, .5, .5, .5, 1.5: the observed
# partition and its mirror {-1, -1} reach 1.5, so p = 2/6.
GOLDEN_P = 1 / 6
GOLDEN_P_TWO_SIDED = 2 / 6
ALTERNATIVES: tuple[Alternative, ...] = ("two-sided", "greater", "less")
TWO_AND_GREATER: tuple[Alternative, ...] = ("two-sided", "greater")


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
    one_sided = weat(_X, _Y, _A, _B, alternative="greater")

    # Assert
    assert sample.effect_size == pytest.approx(GOLDEN_EFFECT_SAMPLE, abs=1e-12)
    assert population.effect_size == pytest.approx(GOLDEN_EFFECT_POPULATION, abs=1e-12)
    assert sample.effect_size_sample == sample.effect_size
    assert sample.effect_size_population == population.effect_size
    assert sample.statistic == pytest.approx(GOLDEN_STATISTIC, abs=1e-12)
    assert sample.alternative == "two-sided"
    assert sample.p_value == pytest.approx(GOLDEN_P_TWO_SIDED, abs=1e-12)
    assert one_sided.p_value == pytest.approx(GOLDEN_P, abs=1e-12)
    assert sample.p_min == pytest.approx(2 / 6)
    assert one_sided.p_min == pytest.approx(1 / 6)
    assert (sample.method, sample.n_partitions, sample.n_permutations) == ("exact", 6, 6)
    assert (sample.ddof, population.ddof) == (1, 0)


def test_weat_of_equal_associations_has_undefined_effect_size_and_p_one() -> None:
    # Prepare: A = B, so every s(w, A, B) is 0.
    result = weat(_X, _Y, _A, _A)

    # Assert
    assert math.isnan(result.effect_size)
    assert math.isnan(result.effect_size_population)
    assert result.p_value == 1.0


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


def _brute_force_p(s_x: list[float], s_y: list[float], alternative: str = "two-sided") -> float:
    """Enumerate every |X|-subset of X u Y; compare mean differences by definition.

    Two-sided: |mean_Xi - mean_Yi| >= |mean_X - mean_Y| (the pooled sd is the same for every
    partition, so this is |effect size_i| >= |effect size|); one-sided: the signed value.
    """
    pooled = s_x + s_y

    def mean_difference(chosen: tuple[int, ...]) -> float:
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        return sum(pooled[i] for i in chosen) / len(chosen) - sum(rest) / len(rest)

    observed = mean_difference(tuple(range(len(s_x))))
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(s_x)):
        value = mean_difference(chosen)
        if alternative == "two-sided":
            hits += abs(value) >= abs(observed) - 1e-9
        elif alternative == "greater":
            hits += value >= observed - 1e-9
        else:
            hits += value <= observed + 1e-9
        total += 1
    return hits / total


@settings(max_examples=60, deadline=None)
@given(
    s_x=st.lists(st.integers(-8, 8), min_size=1, max_size=6),
    s_y=st.lists(st.integers(-8, 8), min_size=1, max_size=6),
    alternative=st.sampled_from(ALTERNATIVES),
)
def test_exact_p_value_equals_brute_force_enumeration(
    s_x: list[int], s_y: list[int], alternative: Alternative
) -> None:
    # Prepare: quarter-integers are exact in binary, so ties are real ties.
    x = [v / 4 for v in s_x]
    y = [v / 4 for v in s_y]

    # Execute
    result = permutation_test(np.asarray(x), np.asarray(y), alternative=alternative)

    # Assert
    assert result.method == "exact"
    assert result.n_partitions == math.comb(len(x) + len(y), len(x))
    assert result.p_value == pytest.approx(_brute_force_p(x, y, alternative), abs=1e-12)
    assert result.p_value >= result.p_min - 1e-15


@pytest.mark.parametrize(("n_x", "n_y"), [(6, 7), (7, 6), (1, 9), (9, 2), (5, 5)])
def test_exact_p_value_on_random_reals_equals_brute_force(n_x: int, n_y: int) -> None:
    # Prepare: unequal sizes too, where the two-sided rule is centred on k T / N, not 0.
    rng = np.random.default_rng(7 + n_x)
    s_x = list(rng.normal(0.3, 1.0, size=n_x))
    s_y = list(rng.normal(0.0, 1.0, size=n_y))

    for alternative in ALTERNATIVES:
        # Execute
        result = permutation_test(np.asarray(s_x), np.asarray(s_y), alternative=alternative)

        # Assert
        assert result.method == "exact"
        assert result.n_permutations == math.comb(n_x + n_y, n_x)
        assert result.p_value == pytest.approx(_brute_force_p(s_x, s_y, alternative), abs=1e-12)


def _subset_sum_counts(values: list[int], k: int) -> dict[int, int]:
    """How many k-subsets of integer ``values`` have each sum: a (size, sum) table, not MITM."""
    table: list[dict[int, int]] = [{0: 1}] + [{} for _ in range(k)]
    for value in values:
        for size in range(k, 0, -1):
            for total, count in table[size - 1].items():
                table[size][total + value] = table[size].get(total + value, 0) + count
    return table[k]


@pytest.mark.parametrize(("n_x", "n_y"), [(12, 12), (11, 12), (12, 5), (1, 12), (10, 10)])
def test_exact_p_value_up_to_12_vs_12_equals_a_subset_sum_table(n_x: int, n_y: int) -> None:
    # Prepare: integer associations, so the exact p follows from a table of subset-sum
    # counts (an algorithm independent of the meet-in-the-middle count).
    rng = np.random.default_rng(n_x * 100 + n_y)
    x = [int(v) for v in rng.integers(-20, 40, size=n_x)]
    y = [int(v) for v in rng.integers(-40, 20, size=n_y)]
    counts = _subset_sum_counts(x + y, n_x)
    n, total, observed = n_x + n_y, sum(x) + sum(y), sum(x)
    # |S - kT/N| >= |S_obs - kT/N|  <=>  |N S - k T| >= |N S_obs - k T| (integers, exact)
    two_sided = sum(
        c for s, c in counts.items() if abs(n * s - n_x * total) >= abs(n * observed - n_x * total)
    )
    greater = sum(c for s, c in counts.items() if s >= observed)
    partitions = math.comb(n, n_x)

    # Execute
    result = permutation_test(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    upper = permutation_test(
        np.asarray(x, dtype=float), np.asarray(y, dtype=float), alternative="greater"
    )

    # Assert
    assert sum(counts.values()) == partitions
    assert (result.method, result.n_permutations) == ("exact", partitions)
    assert result.p_value == pytest.approx(two_sided / partitions, abs=1e-15)
    assert upper.p_value == pytest.approx(greater / partitions, abs=1e-15)


def test_counting_stays_exact_with_bounded_memory_for_small_against_large_sets() -> None:
    # Prepare: 2 vs 2,998 targets: C(3000, 2) = 4,498,500 partitions; every pair sum is
    # enumerable directly. Both orders (the larger set as X goes through complements).
    rng = np.random.default_rng(5)
    s = rng.normal(size=3000)
    pair_sums = np.add.outer(s, s)[np.triu_indices(s.size, k=1)]
    at_least, at_most = 1.5, -2.0

    # Execute
    high, low = count_subset_sums(s, 2, at_least=at_least, at_most=at_most)
    high_c, low_c = count_subset_sums(
        s, s.size - 2, at_least=s.sum() - at_most, at_most=s.sum() - at_least
    )

    # Assert
    assert (high, low) == (int((pair_sums >= at_least).sum()), int((pair_sums <= at_most).sum()))
    assert (high_c, low_c) == (low, high)


@pytest.mark.parametrize("n_x", range(1, 7))
@pytest.mark.parametrize("n_y", range(1, 7))
def test_smallest_p_value_is_reached_by_the_most_extreme_data(n_x: int, n_y: int) -> None:
    # Prepare: every X association far above every Y one, all distinct.
    s_x = 100.0 + np.arange(n_x)
    s_y = np.arange(n_y, dtype=float)

    for alternative in TWO_AND_GREATER:
        # Execute
        result = permutation_test(s_x, s_y, alternative=alternative)

        # Assert: the observed partition alone (and, two-sided with equal sizes, its mirror)
        floor = (2 if alternative == "two-sided" and n_x == n_y else 1) / math.comb(n_x + n_y, n_x)
        assert result.p_min == pytest.approx(floor, rel=1e-12)
        assert result.p_value == pytest.approx(result.p_min, rel=1e-12)


def test_smallest_p_value_of_the_issue_sizes_and_monte_carlo_floor() -> None:
    # 2-5 targets a side, one-sided: 1/6, 1/20, 1/70, 1/252; two-sided twice that.
    assert [smallest_p_value(n, n, alternative="greater") for n in (2, 3, 4, 5)] == pytest.approx(
        [1 / 6, 1 / 20, 1 / 70, 1 / 252]
    )
    assert smallest_p_value(4, 4) == pytest.approx(2 / 70)
    assert smallest_p_value(3, 5) == pytest.approx(1 / 56)
    assert smallest_p_value(25, 25, method="monte_carlo", n_samples=999) == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("p_min", "m", "reachable", "after_others", "words"),
    [
        (2 / 70, 8, False, True, "underpowered: smallest achievable p 0.0286 > alpha/m = 0.0063"),
        (2 / 6, 8, False, False, "never significant"),
        (2 / 12870, 54, True, True, "reachable"),
        (0.05 / 8, 8, True, True, "reachable"),
    ],
)
def test_holm_power_states_whether_significance_is_within_reach(
    p_min: float, m: int, reachable: bool, after_others: bool, words: str
) -> None:
    # Execute
    power = holm_power(p_min, m, alpha=0.05)

    # Assert
    assert (power.reachable, power.after_others) == (reachable, after_others)
    assert words in power.note


@given(
    p_min=st.floats(1e-6, 0.5),
    m=st.integers(1, 60),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_holm_power_agrees_with_what_holm_rejects(p_min: float, m: int, alpha: float) -> None:
    # Prepare: the test at its best p, beside m - 1 others that are all rejected first
    # (p = 0) or none rejected (p = 1).
    power = holm_power(p_min, m, alpha=alpha)

    # Execute
    _, alone = holm_bonferroni([p_min] + [1.0] * (m - 1), alpha=alpha)
    _, helped = holm_bonferroni([p_min] + [0.0] * (m - 1), alpha=alpha)

    # Assert
    assert bool(alone[0]) == power.reachable
    assert bool(helped[0]) == power.after_others


def test_monte_carlo_is_within_sampling_error_of_exact_and_seeded() -> None:
    # Prepare: C(20, 10) = 184,756 partitions; a shift puts p around a few percent.
    rng = np.random.default_rng(3)
    s_x = rng.normal(0.5, 1.0, size=10)
    s_y = rng.normal(0.0, 1.0, size=10)
    n_samples = 20_000

    for alternative in TWO_AND_GREATER:
        # Execute: at the boundary, C(20, 10) partitions is exact, one fewer allowed is not.
        exact = permutation_test(s_x, s_y, alternative=alternative, exact_limit=184_756)
        mc = permutation_test(
            s_x,
            s_y,
            alternative=alternative,
            exact_limit=184_755,
            n_samples=n_samples,
            seed=11,
        )
        again = permutation_test(
            s_x,
            s_y,
            alternative=alternative,
            exact_limit=184_755,
            n_samples=n_samples,
            seed=11,
        )

        # Assert
        assert exact.method == "exact"
        assert exact.n_permutations == 184_756
        assert 0.005 < exact.p_value < 0.5  # a case where sampling error is visible
        assert (mc.method, mc.n_permutations) == ("monte_carlo", n_samples)
        assert mc.n_partitions == 184_756
        # binomial margin: 5 standard errors of a proportion from n_samples draws
        standard_error = math.sqrt(exact.p_value * (1 - exact.p_value) / n_samples)
        assert abs(mc.p_value - exact.p_value) < 5 * standard_error
        assert again.p_value == mc.p_value


def test_default_limit_counts_10_vs_10_and_12_vs_12_exactly() -> None:
    # Prepare
    rng = np.random.default_rng(2)

    for n in (10, 12, 20):
        # Execute
        result = permutation_test(rng.normal(size=n), rng.normal(size=n))

        # Assert
        assert math.comb(2 * n, n) <= DEFAULT_EXACT_LIMIT
        assert (result.method, result.n_permutations) == ("exact", math.comb(2 * n, n))


def test_monte_carlo_p_value_is_never_zero() -> None:
    # Prepare: X all far above Y; no random partition reaches the observed sum.
    s_x = np.full(30, 1.0)
    s_y = np.full(30, -1.0)

    # Execute
    result = permutation_test(s_x, s_y, n_samples=999)

    # Assert
    assert result.method == "monte_carlo"
    assert result.p_value == pytest.approx(1 / 1000)
    assert result.p_min == pytest.approx(1 / 1000)


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
