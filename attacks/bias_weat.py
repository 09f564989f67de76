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
* one-sided p-value: the share of equal-size re-partitions ``(X_i, Y_i)`` of ``X u Y``
  whose statistic is at least the observed one (ties count, as in the SEAT reference
  code). Enumerated exactly when ``C(|X|+|Y|, |X|)`` is at most ``exact_limit``, else
  estimated from ``n_samples`` seeded random partitions as ``(count + 1) / (n + 1)``
  (Phipson and Smyth, "Permutation p-values should never be zero", SAGMB 2010).

Standard-deviation convention: ``ddof=1`` (sample) is the default, as in the SEAT
reference implementation (``np.std(..., ddof=1)`` in sent-bias ``weat.py``); ``ddof=0``
(population) is what WEFE's ``WEAT`` metric and the original WEAT paper's code use. The
two differ by the factor ``sqrt((n - 1) / n)`` with ``n = |X| + |Y|``.

Holm-Bonferroni (Holm, "A simple sequentially rejective multiple test procedure",
Scand. J. Statist. 6, 1979) adjusts the p-values of the tests of one audit.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_EXACT_LIMIT",
    "DEFAULT_MC_SAMPLES",
    "SAMPLE_DDOF",
    "PermutationTest",
    "WeatResult",
    "association",
    "effect_size",
    "holm_bonferroni",
    "permutation_test",
    "weat",
    "weat_statistic",
]

logger = logging.getLogger(__name__)

SAMPLE_DDOF = 1
"""Delta degrees of freedom of the SEAT reference code's standard deviation (sample)."""
DEFAULT_EXACT_LIMIT = 100_000
"""Enumerate every partition when there are at most this many."""
DEFAULT_MC_SAMPLES = 100_000
"""Random partitions drawn when there are more than ``DEFAULT_EXACT_LIMIT``."""
DEFAULT_ALPHA = 0.05
"""Family-wise error rate of the Holm-Bonferroni procedure."""
_CHUNK_ELEMENTS = 4_000_000
"""Partition-matrix elements evaluated per vectorised step (bounds memory)."""
_TIE_RTOL = 1e-10
"""Partition sums within this fraction of ``sum |s|`` of the observed one count as ties."""

PermutationMethod = Literal["exact", "monte_carlo"]


@dataclass(frozen=True)
class PermutationTest:
    """Outcome of the one-sided permutation test.

    Attributes:
        p_value: Share of partitions whose statistic is at least the observed one.
        method: ``"exact"`` (every partition enumerated) or ``"monte_carlo"``.
        n_permutations: Partitions evaluated (all of them when exact, else samples drawn).
        n_partitions: Number of distinct equal-size partitions, ``C(|X|+|Y|, |X|)``.
    """

    p_value: float
    method: PermutationMethod
    n_permutations: int
    n_partitions: int


@dataclass(frozen=True)
class WeatResult:
    """All statistics of one WEAT/SEAT test.

    Attributes:
        effect_size: Cohen's-d-like effect size (see the module docstring).
        statistic: ``sum_X s - sum_Y s``.
        p_value: One-sided permutation p-value.
        method: How the p-value was obtained (``"exact"`` or ``"monte_carlo"``).
        n_permutations: Partitions evaluated for the p-value.
        n_partitions: Distinct equal-size partitions of ``X u Y``.
        ddof: Delta degrees of freedom of the effect size's standard deviation.
    """

    effect_size: float
    statistic: float
    p_value: float
    method: PermutationMethod
    n_permutations: int
    n_partitions: int
    ddof: int


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


def _exact_sums(s: NDArray[np.float64], k: int, count: int) -> NDArray[np.float64]:
    n = s.size
    flat = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(n), k)),
        dtype=np.intp,
        count=count * k,
    )
    sums: NDArray[np.float64] = s[flat.reshape(count, k)].sum(axis=1)
    return sums


def _monte_carlo_count(
    s: NDArray[np.float64], k: int, n_samples: int, threshold: float, rng: np.random.Generator
) -> int:
    n = s.size
    chunk = max(1, _CHUNK_ELEMENTS // n)
    hits = 0
    done = 0
    while done < n_samples:
        m = min(chunk, n_samples - done)
        shuffled = rng.permuted(np.broadcast_to(s, (m, n)), axis=1)
        hits += int(np.count_nonzero(shuffled[:, :k].sum(axis=1) >= threshold))
        done += m
    return hits


def permutation_test(
    s_x: NDArray[np.floating],
    s_y: NDArray[np.floating],
    *,
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    n_samples: int = DEFAULT_MC_SAMPLES,
    seed: int | np.random.Generator = 0,
) -> PermutationTest:
    """One-sided permutation p-value of the WEAT statistic.

    ``X_i`` ranges over the ``|X|``-subsets of ``X u Y`` (``Y_i`` is the rest). Since
    ``sum_{X_i} s - sum_{Y_i} s = 2 sum_{X_i} s - sum_{X u Y} s``, comparing statistics
    is comparing ``sum_{X_i} s`` with ``sum_X s``; ties count as at least as extreme.

    Args:
        s_x: ``s(x, A, B)`` for the first target set.
        s_y: ``s(y, A, B)`` for the second target set.
        exact_limit: Enumerate all partitions when there are at most this many.
        n_samples: Random partitions drawn otherwise.
        seed: Seed (or generator) of the Monte Carlo draws.

    Returns:
        The p-value with the method and the number of partitions evaluated.
    """
    x = np.asarray(s_x, dtype=np.float64)
    y = np.asarray(s_y, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("permutation_test: both target sets need at least one value")
    if n_samples < 1:
        raise ValueError(f"permutation_test: n_samples must be >= 1, got {n_samples}")
    pooled = np.concatenate([x, y])
    k = x.size
    n_partitions = math.comb(pooled.size, k)
    observed = float(x.sum())
    threshold = observed - _TIE_RTOL * max(1.0, float(np.abs(pooled).sum()))
    if n_partitions <= exact_limit:
        sums = _exact_sums(pooled, k, n_partitions)
        hits = int(np.count_nonzero(sums >= threshold))
        logger.debug(
            "weat: exact test over %d partitions, %d at least as extreme", n_partitions, hits
        )
        return PermutationTest(hits / n_partitions, "exact", n_partitions, n_partitions)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    hits = _monte_carlo_count(pooled, k, n_samples, threshold, rng)
    logger.debug("weat: monte carlo %d samples, %d at least as extreme", n_samples, hits)
    return PermutationTest((hits + 1) / (n_samples + 1), "monte_carlo", n_samples, n_partitions)


def weat(
    targ_x: NDArray[np.floating],
    targ_y: NDArray[np.floating],
    attr_a: NDArray[np.floating],
    attr_b: NDArray[np.floating],
    *,
    ddof: int = SAMPLE_DDOF,
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
        ddof: Standard-deviation convention of the effect size (see :func:`effect_size`).
        exact_limit: See :func:`permutation_test`.
        n_samples: See :func:`permutation_test`.
        seed: See :func:`permutation_test`.
    """
    s_x = association(targ_x, attr_a, attr_b)
    s_y = association(targ_y, attr_a, attr_b)
    perm = permutation_test(s_x, s_y, exact_limit=exact_limit, n_samples=n_samples, seed=seed)
    return WeatResult(
        effect_size=effect_size(s_x, s_y, ddof=ddof),
        statistic=weat_statistic(s_x, s_y),
        p_value=perm.p_value,
        method=perm.method,
        n_permutations=perm.n_permutations,
        n_partitions=perm.n_partitions,
        ddof=ddof,
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
