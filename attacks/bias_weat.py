"""WEAT / SEAT association statistics: effect size, permutation p-value, Holm-Bonferroni.

The Word Embedding Association Test of Caliskan, Bryson and Narayanan, "Semantics derived
automatically from language corpora contain human-like biases", Science 356 (2017), and
its sentence version SEAT (May, Wang, Bordia, Bowman and Rudinger, "On Measuring Social
Biases in Sentence Encoders", NAACL 2019) measure whether two target sets ``X``, ``Y``
(e.g. male / female names) are associated differently with two attribute sets ``A``,
``B`` (e.g. career / family words):

* ``s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)``
* test statistic ``sum_{x in X} s(x) - sum_{y in Y} s(y)``
* effect size ``(mean_X s - mean_Y s) / std_{w in X u Y} s(w)``
* permutation p-value over the re-partitions of ``X u Y`` (:mod:`attacks.bias_permutation`):
  two-sided by default (``|effect size|`` at least the observed one, so a strong
  reversed association counts as much as the expected one), one-sided on request.

Standard-deviation convention: ``ddof=1`` (sample) is the default, as in the SEAT
reference implementation (``np.std(..., ddof=1)`` in sent-bias ``weat.py``); ``ddof=0``
(population) is what WEFE's ``WEAT`` metric and the original WEAT paper's code use. The
two differ by the factor ``sqrt((n - 1) / n)`` with ``n = |X| + |Y|``; :func:`weat`
returns both.

Holm-Bonferroni (Holm, "A simple sequentially rejective multiple test procedure",
Scand. J. Statist. 6, 1979) adjusts the p-values of the tests of one audit. In a family
of ``m`` tests the smallest p-value is compared with ``alpha / m`` first, so a test whose
smallest achievable p-value exceeds ``alpha / m`` can be rejected only after others
are, and one whose smallest achievable p-value exceeds ``alpha`` never
(:func:`holm_power`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from attacks.bias_permutation import (
    DEFAULT_ALTERNATIVE,
    DEFAULT_EXACT_LIMIT,
    DEFAULT_MC_SAMPLES,
    Alternative,
    PermutationMethod,
    PermutationTest,
    permutation_test,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_EXACT_LIMIT",
    "DEFAULT_MC_SAMPLES",
    "POPULATION_DDOF",
    "SAMPLE_DDOF",
    "HolmPower",
    "PermutationTest",
    "WeatResult",
    "association",
    "effect_size",
    "holm_bonferroni",
    "holm_power",
    "permutation_test",
    "weat",
    "weat_statistic",
]

logger = logging.getLogger(__name__)

SAMPLE_DDOF = 1
"""Delta degrees of freedom of the SEAT reference code's standard deviation (sample)."""
POPULATION_DDOF = 0
"""Delta degrees of freedom of WEFE's and the original WEAT code's (population)."""
DEFAULT_ALPHA = 0.05
"""Family-wise error rate of the Holm-Bonferroni procedure."""


@dataclass(frozen=True)
class WeatResult:
    """All statistics of one WEAT/SEAT test.

    Attributes:
        effect_size: Cohen's-d-like effect size with the ``ddof`` convention; ``nan`` when
            every association is equal (undefined).
        statistic: ``sum_X s - sum_Y s``.
        p_value: Permutation p-value (``alternative``).
        method: How the p-value was obtained (``"exact"`` or ``"monte_carlo"``).
        n_permutations: Partitions evaluated for the p-value.
        n_partitions: Distinct equal-size partitions of ``X u Y``.
        ddof: Delta degrees of freedom of ``effect_size``'s standard deviation.
        effect_size_sample: The effect size with the sample standard deviation (SEAT code).
        effect_size_population: With the population one (WEFE, the original WEAT code).
        alternative: ``"two-sided"``, ``"greater"`` or ``"less"``.
        p_min: Smallest p-value the test could give at these sizes (and sample count).
    """

    effect_size: float
    statistic: float
    p_value: float
    method: PermutationMethod
    n_permutations: int
    n_partitions: int
    ddof: int
    effect_size_sample: float = math.nan
    effect_size_population: float = math.nan
    alternative: Alternative = DEFAULT_ALTERNATIVE
    p_min: float = 0.0


@dataclass(frozen=True)
class HolmPower:
    """Whether a test can be significant after Holm in a family of ``m`` tests.

    Attributes:
        reachable: ``p_min * m <= alpha``: significance is within reach whatever the
            other tests show.
        after_others: ``p_min <= alpha``: reachable, at best, once others are rejected.
        note: The verdict in words, for a report's power column.
    """

    reachable: bool
    after_others: bool
    note: str


def _unit_rows(vectors: NDArray[np.floating], name: str) -> NDArray[np.float64]:
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, d) array, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError(f"{name} holds a zero or non-finite vector; cosine is undefined")
    unit: NDArray[np.float64] = array / norms
    return unit


def association(
    words: NDArray[np.floating], attr_a: NDArray[np.floating], attr_b: NDArray[np.floating]
) -> NDArray[np.float64]:
    """``s(w, A, B)`` for every row ``w`` of ``words``.

    Args:
        words: Target vectors ``(n, d)``; need not be normalised.
        attr_a: Attribute set ``A`` ``(n_a, d)``.
        attr_b: Attribute set ``B`` ``(n_b, d)``.

    Returns:
        ``(n,)`` float64 array of mean cosine to ``A`` minus mean cosine to ``B``.
    """
    w = _unit_rows(words, "words")
    a = _unit_rows(attr_a, "attr_a")
    b = _unit_rows(attr_b, "attr_b")
    if not w.shape[1] == a.shape[1] == b.shape[1]:
        raise ValueError(f"dimension mismatch: {w.shape[1]}, {a.shape[1]}, {b.shape[1]}")
    result: NDArray[np.float64] = (w @ a.T).mean(axis=1) - (w @ b.T).mean(axis=1)
    return result


def weat_statistic(s_x: NDArray[np.floating], s_y: NDArray[np.floating]) -> float:
    """WEAT test statistic ``sum_X s - sum_Y s``."""
    return float(np.sum(s_x, dtype=np.float64) - np.sum(s_y, dtype=np.float64))


def effect_size(
    s_x: NDArray[np.floating], s_y: NDArray[np.floating], *, ddof: int = SAMPLE_DDOF
) -> float:
    """WEAT effect size ``(mean_X s - mean_Y s) / std_{X u Y} s``.

    Args:
        s_x: ``s(x, A, B)`` for the first target set.
        s_y: ``s(y, A, B)`` for the second target set.
        ddof: 1 for the sample standard deviation (SEAT reference code), 0 for the
            population one (WEFE, original WEAT code).

    Raises:
        ValueError: A set is empty, there are too few values for ``ddof``, or every
            ``s`` is equal (the effect size is undefined).
    """
    x = np.asarray(s_x, dtype=np.float64)
    y = np.asarray(s_y, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("effect_size: both target sets need at least one value")
    pooled = np.concatenate([x, y])
    if pooled.size <= ddof:
        raise ValueError(f"effect_size: {pooled.size} values are too few for ddof={ddof}")
    std = float(np.std(pooled, ddof=ddof))
    if std == 0.0:
        raise ValueError("effect_size: every association s(w, A, B) is equal; undefined")
    return float((x.mean() - y.mean()) / std)


def weat(
    targ_x: NDArray[np.floating],
    targ_y: NDArray[np.floating],
    attr_a: NDArray[np.floating],
    attr_b: NDArray[np.floating],
    *,
    ddof: int = SAMPLE_DDOF,
    alternative: Alternative = DEFAULT_ALTERNATIVE,
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    n_samples: int = DEFAULT_MC_SAMPLES,
    seed: int | np.random.Generator = 0,
) -> WeatResult:
    """Run one WEAT/SEAT test on embedding matrices.

    Args:
        targ_x: Vectors of target set ``X`` ``(n_x, d)``.
        targ_y: Vectors of target set ``Y`` ``(n_y, d)``.
        attr_a: Vectors of attribute set ``A``.
        attr_b: Vectors of attribute set ``B``.
        ddof: Standard-deviation convention of ``effect_size`` (see :func:`effect_size`);
            both conventions are returned as well.
        alternative: See :func:`attacks.bias_permutation.permutation_test`.
        exact_limit: See :func:`attacks.bias_permutation.permutation_test`.
        n_samples: See :func:`attacks.bias_permutation.permutation_test`.
        seed: See :func:`attacks.bias_permutation.permutation_test`.
    """
    s_x = association(targ_x, attr_a, attr_b)
    s_y = association(targ_y, attr_a, attr_b)
    perm = permutation_test(
        s_x, s_y, alternative=alternative, exact_limit=exact_limit, n_samples=n_samples, seed=seed
    )
    return WeatResult(
        effect_size=_defined_effect_size(s_x, s_y, ddof),
        statistic=weat_statistic(s_x, s_y),
        p_value=perm.p_value,
        method=perm.method,
        n_permutations=perm.n_permutations,
        n_partitions=perm.n_partitions,
        ddof=ddof,
        effect_size_sample=_defined_effect_size(s_x, s_y, SAMPLE_DDOF),
        effect_size_population=_defined_effect_size(s_x, s_y, POPULATION_DDOF),
        alternative=perm.alternative,
        p_min=perm.p_min,
    )


def _defined_effect_size(s_x: NDArray[np.float64], s_y: NDArray[np.float64], ddof: int) -> float:
    """:func:`effect_size`, or ``nan`` where undefined (every ``s`` equal)."""
    pooled = np.concatenate([s_x, s_y])
    if pooled.size <= ddof or float(np.std(pooled)) == 0.0:
        return math.nan
    return effect_size(s_x, s_y, ddof=ddof)


def holm_power(p_min: float, m: int, *, alpha: float = DEFAULT_ALPHA) -> HolmPower:
    """Can a test whose smallest achievable p-value is ``p_min`` be significant after Holm?

    Holm compares the smallest of ``m`` p-values with ``alpha / m``, the next with
    ``alpha / (m - 1)``, ..., the largest with ``alpha``: at best a test is compared with
    ``alpha / m`` (when nothing else is rejected first) and with ``alpha`` (when every
    other test is rejected first).

    Args:
        p_min: The test's smallest achievable p-value.
        m: The number of tests in the Holm family.
        alpha: Family-wise error rate.
    """
    if m < 1:
        raise ValueError(f"holm_power: the family needs at least one test, got m={m}")
    bound = alpha / m
    if p_min * m <= alpha:
        return HolmPower(
            True, True, f"reachable: smallest achievable p {p_min:.3g} <= alpha/m = {bound:.2g}"
        )
    if p_min <= alpha:
        return HolmPower(
            False,
            True,
            f"underpowered: smallest achievable p {p_min:.3g} > alpha/m = {bound:.2g} "
            "(significant only if other tests are rejected first)",
        )
    return HolmPower(
        False,
        False,
        f"underpowered: smallest achievable p {p_min:.3g} > alpha = {alpha:g} (never significant)",
    )


def holm_bonferroni(
    p_values: NDArray[np.floating] | list[float], *, alpha: float = DEFAULT_ALPHA
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Holm's step-down adjusted p-values and rejections.

    With ``p_(1) <= ... <= p_(m)``, the adjusted value of ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``; a hypothesis is rejected when its
    adjusted p-value is at most ``alpha`` (equivalent to Holm's sequential rule).

    Args:
        p_values: Unadjusted p-values, in any order.
        alpha: Family-wise error rate.

    Returns:
        ``(adjusted, reject)`` in the order of ``p_values``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"holm_bonferroni: expected a 1-D array, got shape {p.shape}")
    if np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise ValueError("holm_bonferroni: p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted, adjusted <= alpha
