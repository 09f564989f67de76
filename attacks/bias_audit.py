"""Bias audit: every SEAT/WEAT test of the sent-bias suite on one encoder (plus adapter).

Loads the tests of May et al., "On Measuring Social Biases in Sentence Encoders"
(NAACL 2019; repository W4ngatang/sent-bias, ``tests/*.jsonl``): ``weat*`` hold the word
lists of Caliskan et al. (Science 2017), ``sent-weat*`` their sentence versions, plus the
double-bind and angry-black-woman tests. Each file is ONE JSON object with ``targ1``,
``targ2``, ``attr1``, ``attr2``, each ``{"category": str, "examples": [str, ...]}``.

Every text is embedded once (the encoder, then the adapter when one is given: a
query-side adapter changes what a query such as "Emily is a nurse." is mapped to, so
the audit applies it to every text), the statistics of :mod:`attacks.bias_weat` run on
each test, and Holm-Bonferroni adjusts the p-values across all tests of the audit.
Effect sizes use the sample standard deviation (``ddof=1``), as the SEAT reference code.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from attacks.base import AttackReport
from attacks.bias_weat import (
    DEFAULT_ALPHA,
    DEFAULT_EXACT_LIMIT,
    DEFAULT_MC_SAMPLES,
    SAMPLE_DDOF,
    holm_bonferroni,
    weat,
)
from embedding_core.cache import EmbeddingCache
from embedding_core.data import resolve_dataset_dir
from embedding_core.encoder import Encoder
from embedding_core.errors import DataFormatError, DatasetNotFoundError

__all__ = [
    "ATTACK_NAME",
    "GLOVE_PUBLISHED",
    "SEAT_DATASET",
    "SET_KEYS",
    "BiasTest",
    "Embed",
    "TextSet",
    "VectorTransform",
    "audit_embeddings",
    "load_bias_test",
    "load_bias_tests",
    "resolve_seat_dir",
    "run_bias_audit",
]

logger = logging.getLogger(__name__)

ATTACK_NAME = "bias_audit"
SEAT_DATASET = "seat"
TESTS_FOLDER = "tests"
TEST_SUFFIX = ".jsonl"
_MARKER = f"{TESTS_FOLDER}/weat1{TEST_SUFFIX}"
SET_KEYS = ("targ1", "targ2", "attr1", "attr2")
CATEGORY_KEY = "category"
EXAMPLES_KEY = "examples"
SENTENCE_PREFIX = "sent-"
THREAT_MODEL = (
    "Not an adversary: an auditor with query access to the encoder (and its adapter) "
    "measures whether social-group target texts associate differently with attribute "
    "texts (WEAT/SEAT, one-sided permutation tests, Holm-Bonferroni across tests)."
)

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


@dataclass(frozen=True)
class TextSet:
    """One target or attribute set of a test."""

    category: str
    examples: tuple[str, ...]


@dataclass(frozen=True)
class BiasTest:
    """One WEAT/SEAT test: target sets X, Y and attribute sets A, B."""

    name: str
    targ1: TextSet
    targ2: TextSet
    attr1: TextSet
    attr2: TextSet

    @property
    def level(self) -> str:
        """``"sentence"`` for ``sent-*`` tests, else ``"word"`` (word or context lists)."""
        return "sentence" if self.name.startswith(SENTENCE_PREFIX) else "word"

    def texts(self) -> list[str]:
        """Every example of the four sets, in set order."""
        return [t for s in (self.targ1, self.targ2, self.attr1, self.attr2) for t in s.examples]


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _text_set(path: Path, key: str, raw: object) -> TextSet:
    expected = f'"{key}": {{"{CATEGORY_KEY}": str, "{EXAMPLES_KEY}": [str, ...]}}'
    if not isinstance(raw, dict):
        raise DataFormatError(path, 0, f"{key!r} is not an object", expected=expected)
    category = raw.get(CATEGORY_KEY)
    examples = raw.get(EXAMPLES_KEY)
    if not isinstance(category, str):
        raise DataFormatError(path, 0, f"{key}.{CATEGORY_KEY} is missing or not a string")
    if not isinstance(examples, list) or not examples:
        raise DataFormatError(
            path, 0, f"{key}.{EXAMPLES_KEY} is missing or empty", expected=expected
        )
    if not all(isinstance(e, str) and e.strip() for e in examples):
        raise DataFormatError(
            path, 0, f"{key}.{EXAMPLES_KEY} holds a non-string or blank example", expected=expected
        )
    return TextSet(category, tuple(examples))


def load_bias_test(path: str | Path) -> BiasTest:
    """Read one sent-bias test file (a single JSON object despite the .jsonl name).

    Raises:
        DatasetNotFoundError: The file does not exist.
        DataFormatError: It is not valid JSON, or a set is missing or malformed.
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetNotFoundError(f"bias test {file} does not exist")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = exc.lineno if isinstance(exc, json.JSONDecodeError) else 0
        raise DataFormatError(
            file,
            line,
            f"not valid JSON ({exc})",
            expected="one JSON object with targ1, targ2, attr1, attr2",
            fix="restore the file from the sent-bias repository (tests/*.jsonl)",
        ) from exc
    if not isinstance(raw, dict):
        raise DataFormatError(file, 0, "top level is not a JSON object")
    missing = [k for k in SET_KEYS if k not in raw]
    if missing:
        raise DataFormatError(
            file,
            0,
            f"missing set(s) {', '.join(missing)}",
            expected=f"keys {', '.join(SET_KEYS)}",
            fix="restore the file from the sent-bias repository (tests/*.jsonl)",
        )
    sets = [_text_set(file, key, raw[key]) for key in SET_KEYS]
    return BiasTest(file.name.removesuffix(TEST_SUFFIX), *sets)


def resolve_seat_dir(data_dir: str | Path | None = None) -> Path:
    """The folder holding the ``*.jsonl`` tests.

    ``data_dir`` may be that folder itself, the ``seat`` dataset folder, or the data
    directory holding ``seat/`` (``None``: ``FEDEMBED_DATA_DIR``).
    """
    if data_dir is not None and (Path(data_dir) / f"weat1{TEST_SUFFIX}").is_file():
        return Path(data_dir)
    return resolve_dataset_dir(data_dir, SEAT_DATASET, marker=_MARKER) / TESTS_FOLDER


def load_bias_tests(
    data_dir: str | Path | None = None, *, names: Sequence[str] | None = None
) -> list[BiasTest]:
    """Load the tests of the suite, naturally sorted (weat1, weat2, ..., weat10).

    Args:
        data_dir: See :func:`resolve_seat_dir`.
        names: Only these tests (file names without ``.jsonl``); all when ``None``.
    """
    folder = resolve_seat_dir(data_dir)
    if names is None:
        paths = sorted(folder.glob(f"*{TEST_SUFFIX}"), key=lambda p: _natural_key(p.name))
    else:
        paths = [folder / f"{name}{TEST_SUFFIX}" for name in names]
    tests = [load_bias_test(path) for path in paths]
    logger.info("bias_audit: loaded %d tests from %s", len(tests), folder)
    return tests


def audit_embeddings(
    tests: Sequence[BiasTest],
    embed: Embed,
    *,
    target: str,
    ddof: int = SAMPLE_DDOF,
    alpha: float = DEFAULT_ALPHA,
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    n_samples: int = DEFAULT_MC_SAMPLES,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> AttackReport:
    """Run every test on vectors from ``embed`` and Holm-adjust across them.

    Args:
        tests: The tests of the audit (one Holm family).
        embed: Maps texts to vectors ``(n, d)``; called once with every distinct text.
        target: Label of the embedding model for the report.
        ddof: Effect-size standard-deviation convention (1: sample, SEAT code).
        alpha: Family-wise error rate of Holm-Bonferroni.
        exact_limit: Enumerate the partitions of a test when there are at most this many.
        n_samples: Monte Carlo partitions per test otherwise.
        seed: Base seed; test ``i`` draws from ``default_rng([seed, i])``.
        progress: Called as ``progress(done, total)`` after each test.

    Returns:
        An :class:`AttackReport` whose ``details["tests"]`` holds one row per test and
        whose metrics hold each test's effect size, p-value and adjusted p-value.
    """
    if not tests:
        raise ValueError("audit_embeddings: no tests given")
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
            exact_limit=exact_limit,
            n_samples=n_samples,
            seed=np.random.default_rng([seed, index]),
        )
        rows_out.append(
            {
                "test": test.name,
                "level": test.level,
                "targets": f"{test.targ1.category} vs {test.targ2.category}",
                "attributes": f"{test.attr1.category} vs {test.attr2.category}",
                "sizes": [
                    len(s.examples) for s in (test.targ1, test.targ2, test.attr1, test.attr2)
                ],
                "effect_size": result.effect_size,
                "statistic": result.statistic,
                "p_value": result.p_value,
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
        row["p_holm"] = float(p_adj)
        row["significant"] = bool(rej)
        metrics[f"{row['test']}/effect_size"] = row["effect_size"]
        metrics[f"{row['test']}/p_value"] = row["p_value"]
        metrics[f"{row['test']}/p_holm"] = float(p_adj)
    effects = np.array([r["effect_size"] for r in rows_out])
    metrics["n_tests"] = float(len(rows_out))
    metrics["n_significant"] = float(np.count_nonzero(reject))
    metrics["mean_abs_effect_size"] = float(np.abs(effects).mean())
    seconds = time.perf_counter() - started
    logger.info(
        "bias_audit: %s: %d tests, %d significant after Holm (alpha=%g), %d texts, %.1f s",
        target,
        len(rows_out),
        int(metrics["n_significant"]),
        alpha,
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
            "std_convention": "sample (ddof=1, SEAT reference code)"
            if ddof == SAMPLE_DDOF
            else f"ddof={ddof}",
            "alpha": alpha,
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
        alpha=alpha,
        exact_limit=exact_limit,
        n_samples=n_samples,
        seed=seed,
        progress=progress,
    )
