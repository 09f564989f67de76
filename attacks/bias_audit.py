"""Bias audit: WEAT/SEAT tests (the sent-bias suite, an auditor's own) on an encoder + adapter.

The tests come from :mod:`attacks.seat_tests`: the suite of May et al. (NAACL 2019) or
any folder of files in its format, alone or beside the suite.

Every text is embedded once (the encoder, then the adapter when one is given: a
query-side adapter changes what a query such as "Emily is a nurse." is mapped to, so
the audit applies it to every text), the statistics of :mod:`attacks.bias_weat` run on
each test (two-sided permutation tests by default), and Holm-Bonferroni adjusts the
p-values across all tests of the audit. Each row states its effect size with both
standard-deviation conventions (sample, ``ddof=1``, the SEAT reference code's; population,
``ddof=0``, WEFE's), its smallest achievable p-value and whether significance is within
reach at the family's size (:func:`attacks.bias_weat.holm_power`): a test that cannot
reach it shows "underpowered", never "no bias found".
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from attacks.base import AttackReport
from attacks.bias_permutation import DEFAULT_ALTERNATIVE, Alternative
from attacks.bias_weat import (
    DEFAULT_ALPHA,
    DEFAULT_EXACT_LIMIT,
    DEFAULT_MC_SAMPLES,
    POPULATION_DDOF,
    SAMPLE_DDOF,
    holm_bonferroni,
    holm_power,
    weat,
)
from attacks.seat_tests import (
    SEAT_DATASET,
    SEAT_FORMAT,
    SET_KEYS,
    BiasTest,
    TextSet,
    collect_bias_tests,
    load_bias_folder,
    load_bias_test,
    load_bias_tests,
    resolve_seat_dir,
)
from embedding_core.cache import EmbeddingCache
from embedding_core.encoder import Encoder

__all__ = [
    "ATTACK_NAME",
    "GLOVE_PUBLISHED",
    "SEAT_DATASET",
    "SEAT_FORMAT",
    "SET_KEYS",
    "STD_CONVENTIONS",
    "BiasTest",
    "Embed",
    "TextSet",
    "VectorTransform",
    "audit_embeddings",
    "collect_bias_tests",
    "load_bias_folder",
    "load_bias_test",
    "load_bias_tests",
    "resolve_seat_dir",
    "run_bias_audit",
]

logger = logging.getLogger(__name__)

ATTACK_NAME = "bias_audit"
THREAT_MODEL = (
    "Not an adversary: an auditor with query access to the encoder (and its adapter) "
    "measures whether social-group target texts associate differently with attribute "
    "texts (WEAT/SEAT, two-sided permutation tests by default, Holm-Bonferroni across tests)."
)

STD_CONVENTIONS: dict[int, str] = {
    SAMPLE_DDOF: "sample standard deviation (ddof=1, SEAT reference code)",
    POPULATION_DDOF: "population standard deviation (ddof=0, WEFE and the original WEAT code)",
}

Embed = Callable[[Sequence[str]], NDArray[np.float32]]
"""Maps texts to their vectors ``(len(texts), d)``, in order."""

# Caliskan, Bryson and Narayanan, "Semantics derived automatically from language corpora
# contain human-like biases" (Science 2017), Table 1: GloVe (Common Crawl) effect sizes.
GLOVE_PUBLISHED: dict[str, float] = {
    "weat1": 1.50,
    "weat2": 1.53,
    "weat3": 1.41,
    "weat4": 1.50,
    "weat5": 1.28,
    "weat6": 1.81,
    "weat7": 1.06,
    "weat8": 1.24,
    "weat9": 1.38,
    "weat10": 1.21,
}


class VectorTransform(Protocol):
    """What the audit needs of an adapter (``embedding_core.adapter.Adapter`` fits)."""

    def transform(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Map encoder vectors ``(n, d)`` to adapted vectors."""
        ...


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _direction(test: BiasTest, effect: float) -> str:
    """Which target set leans to which attribute set (``effect > 0``: targ1 to attr1)."""
    if not math.isfinite(effect) or effect == 0.0:
        return "none"
    near = test.attr1 if effect > 0 else test.attr2
    return f"{test.targ1.category} ~ {near.category} (vs {test.targ2.category})"


def audit_embeddings(
    tests: Sequence[BiasTest],
    embed: Embed,
    *,
    target: str,
    ddof: int = SAMPLE_DDOF,
    alternative: Alternative = DEFAULT_ALTERNATIVE,
    alpha: float = DEFAULT_ALPHA,
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    n_samples: int = DEFAULT_MC_SAMPLES,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> AttackReport:
    """Run every test on vectors from ``embed`` and Holm-adjust across them.

    Args:
        tests: The tests of the audit (one Holm family); names must be unique.
        embed: Maps texts to vectors ``(n, d)``; called once with every distinct text.
        target: Label of the embedding model for the report.
        ddof: Convention of each row's ``effect_size`` (1: sample, SEAT code); both
            conventions are in every row too (``effect_size_sample``,
            ``effect_size_population``).
        alternative: ``"two-sided"`` (default), ``"greater"`` or ``"less"``.
        alpha: Family-wise error rate of Holm-Bonferroni.
        exact_limit: Count the partitions of a test exactly when there are at most this many.
        n_samples: Monte Carlo partitions per test otherwise.
        seed: Base seed; test ``i`` draws from ``default_rng([seed, i])``.
        progress: Called as ``progress(done, total)`` after each test.

    Returns:
        An :class:`AttackReport` whose ``details["tests"]`` holds one row per test and
        whose metrics hold each test's effect size, p-value and adjusted p-value. An
        effect size is ``None`` where undefined (every association equal).
    """
    if not tests:
        raise ValueError("audit_embeddings: no tests given")
    duplicates = [n for n, c in Counter(t.name for t in tests).items() if c > 1]
    if duplicates:
        raise ValueError(f"audit_embeddings: test names repeat: {', '.join(duplicates)}")
    started = time.perf_counter()
    texts = sorted({t for test in tests for t in test.texts()})
    vectors = np.asarray(embed(texts), dtype=np.float64)
    if vectors.shape[0] != len(texts):
        raise ValueError(f"embed returned {vectors.shape[0]} vectors for {len(texts)} texts")
    row_of = {text: i for i, text in enumerate(texts)}
    embedded = time.perf_counter()

    def rows(s: TextSet) -> NDArray[np.float64]:
        return vectors[[row_of[t] for t in s.examples]]

    rows_out: list[dict[str, Any]] = []
    for index, test in enumerate(tests):
        result = weat(
            rows(test.targ1),
            rows(test.targ2),
            rows(test.attr1),
            rows(test.attr2),
            ddof=ddof,
            alternative=alternative,
            exact_limit=exact_limit,
            n_samples=n_samples,
            seed=np.random.default_rng([seed, index]),
        )
        rows_out.append(
            {
                "test": test.name,
                "file": str(test.path) if test.path else None,
                "level": test.level,
                "targets": f"{test.targ1.category} vs {test.targ2.category}",
                "attributes": f"{test.attr1.category} vs {test.attr2.category}",
                "sizes": [
                    len(s.examples) for s in (test.targ1, test.targ2, test.attr1, test.attr2)
                ],
                "effect_size": _finite(result.effect_size),
                "effect_size_sample": _finite(result.effect_size_sample),
                "effect_size_population": _finite(result.effect_size_population),
                "direction": _direction(test, result.effect_size_sample),
                "statistic": result.statistic,
                "alternative": result.alternative,
                "p_value": result.p_value,
                "p_min": result.p_min,
                "p_method": result.method,
                "n_permutations": result.n_permutations,
                "n_partitions": str(result.n_partitions),
            }
        )
        if progress is not None:
            progress(index + 1, len(tests))
    adjusted, reject = holm_bonferroni([r["p_value"] for r in rows_out], alpha=alpha)
    metrics: dict[str, float] = {}
    for row, p_adj, rej in zip(rows_out, adjusted, reject, strict=True):
        power = holm_power(row["p_min"], len(rows_out), alpha=alpha)
        row["p_holm"] = float(p_adj)
        row["significant"] = bool(rej)
        row["reachable"] = power.reachable
        row["reachable_after_others"] = power.after_others
        row["power"] = power.note
        row["verdict"] = (
            "significant"
            if rej
            else "not significant"
            if power.reachable
            else "underpowered: significant only if others are rejected first"
            if power.after_others
            else "underpowered: can never be significant in this family"
        )
        if row["effect_size"] is not None:
            metrics[f"{row['test']}/effect_size"] = row["effect_size"]
        metrics[f"{row['test']}/p_value"] = row["p_value"]
        metrics[f"{row['test']}/p_holm"] = float(p_adj)
    effects = np.array([abs(r["effect_size"]) for r in rows_out if r["effect_size"] is not None])
    metrics["n_tests"] = float(len(rows_out))
    metrics["n_significant"] = float(np.count_nonzero(reject))
    metrics["n_unreachable"] = float(sum(not r["reachable"] for r in rows_out))
    metrics["mean_abs_effect_size"] = float(effects.mean()) if effects.size else 0.0
    seconds = time.perf_counter() - started
    logger.info(
        "bias_audit: %s: %d tests, %d significant after Holm (alpha=%g, %s), %d underpowered, "
        "%d texts, %.1f s",
        target,
        len(rows_out),
        int(metrics["n_significant"]),
        alpha,
        alternative,
        int(metrics["n_unreachable"]),
        len(texts),
        seconds,
    )
    return AttackReport(
        attack=ATTACK_NAME,
        target=target,
        threat_model=THREAT_MODEL,
        metrics=metrics,
        seconds=seconds,
        details={
            "tests": rows_out,
            "ddof": ddof,
            "std_convention": STD_CONVENTIONS.get(ddof, f"ddof={ddof}"),
            "effect_size_conventions": {
                "effect_size_sample": STD_CONVENTIONS[SAMPLE_DDOF],
                "effect_size_population": STD_CONVENTIONS[POPULATION_DDOF],
            },
            "alternative": alternative,
            "alpha": alpha,
            "family_size": len(rows_out),
            "exact_limit": exact_limit,
            "n_samples": n_samples,
            "seed": seed,
            "n_texts": len(texts),
            "embed_seconds": embedded - started,
        },
    )


def run_bias_audit(
    tests: Sequence[BiasTest],
    encoder: Encoder,
    *,
    adapter: VectorTransform | None = None,
    cache: EmbeddingCache | None = None,
    target: str | None = None,
    ddof: int = SAMPLE_DDOF,
    alternative: Alternative = DEFAULT_ALTERNATIVE,
    alpha: float = DEFAULT_ALPHA,
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    n_samples: int = DEFAULT_MC_SAMPLES,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> AttackReport:
    """Audit ``encoder`` (followed by ``adapter`` when given) on ``tests``.

    Args:
        tests: From :func:`load_bias_tests`.
        encoder: The base encoder; texts are L2-normalised encoder outputs.
        adapter: Optional adapter applied to every encoder vector (the fine-tuned model).
        cache: Optional embedding cache for the encoder outputs.
        target: Report label; defaults to the model id plus ``"+adapter"``.
        ddof: See :func:`audit_embeddings`.
        alternative: See :func:`audit_embeddings`.
        alpha: See :func:`audit_embeddings`.
        exact_limit: See :func:`audit_embeddings`.
        n_samples: See :func:`audit_embeddings`.
        seed: See :func:`audit_embeddings`.
        progress: See :func:`audit_embeddings`.
    """
    check_base = getattr(adapter, "check_base", None)
    if callable(check_base):
        check_base(encoder.fingerprint)

    def embed(texts: Sequence[str]) -> NDArray[np.float32]:
        if cache is not None:
            base = cache.get_or_encode(encoder, texts, show_progress=False)
        else:
            base = encoder.encode(texts, show_progress=False)
        return adapter.transform(base) if adapter is not None else base

    label = target or (encoder.model_id + (" + adapter" if adapter is not None else ""))
    return audit_embeddings(
        tests,
        embed,
        target=label,
        ddof=ddof,
        alternative=alternative,
        alpha=alpha,
        exact_limit=exact_limit,
        n_samples=n_samples,
        seed=seed,
        progress=progress,
    )
