"""Bias audit on the real sent-bias tests and encoder; WEFE cross-check; file errors."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from attacks.bias_audit import (
    BiasTest,
    Embed,
    audit_embeddings,
    load_bias_test,
    load_bias_tests,
    resolve_seat_dir,
    run_bias_audit,
)
from attacks.bias_weat import association, effect_size, holm_bonferroni, weat_statistic
from embedding_core.adapter import Adapter
from embedding_core.cache import EmbeddingCache
from embedding_core.encoder import Encoder
from embedding_core.errors import DataFormatError, DatasetNotFoundError

WORD_WEAT = [f"weat{i}" for i in range(1, 11)]
N_SUITE_TESTS = 46  # PROVENANCE.md of the shared copy: 46 files in tests/
WEFE_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    """The bundled all-MiniLM-L6-v2, loaded once for this module."""
    return Encoder.load()


@pytest.fixture(scope="module")
def word_tests(shared_data_dir: Path) -> list[BiasTest]:
    return load_bias_tests(shared_data_dir, names=WORD_WEAT)


@pytest.fixture(scope="module")
def embed(encoder: Encoder, embedding_cache_dir: Path) -> Embed:
    cache = EmbeddingCache(embedding_cache_dir)

    def run(texts: Sequence[str]) -> NDArray[np.float32]:
        return cache.get_or_encode(encoder, texts, show_progress=False)

    return run


def test_loads_the_whole_suite_in_natural_order(shared_data_dir: Path) -> None:
    # Execute
    tests = load_bias_tests(shared_data_dir)

    # Assert
    names = [t.name for t in tests]
    assert len(tests) == N_SUITE_TESTS
    assert names.index("weat2") < names.index("weat10")
    weat1 = tests[names.index("weat1")]
    assert (weat1.targ1.category, weat1.attr2.category) == ("Flowers", "Unpleasant")
    assert [len(s.examples) for s in (weat1.targ1, weat1.targ2, weat1.attr1, weat1.attr2)] == [
        25,
        25,
        25,
        25,
    ]
    assert weat1.targ1.examples[0] == "aster"
    assert {t.level for t in tests if t.name.startswith("sent-")} == {"sentence"}
    assert weat1.level == "word"


def test_data_dir_may_be_the_root_the_dataset_or_its_tests_folder(shared_data_dir: Path) -> None:
    # Prepare
    expected = shared_data_dir / "seat" / "tests"

    # Execute / Assert
    assert resolve_seat_dir(shared_data_dir) == expected
    assert resolve_seat_dir(shared_data_dir / "seat") == expected
    assert resolve_seat_dir(expected) == expected


def test_missing_data_dir_raises_dataset_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="seat"):
        resolve_seat_dir(tmp_path)


_VALID = {
    "targ1": {"category": "X", "examples": ["a", "b"]},
    "targ2": {"category": "Y", "examples": ["c", "d"]},
    "attr1": {"category": "A", "examples": ["e"]},
    "attr2": {"category": "B", "examples": ["f"]},
}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"targ1": {"category": "X", "examples": ["a"]},\n  oops', "not valid JSON"),
        (json.dumps(["not", "an", "object"]), "not a JSON object"),
        (json.dumps({k: v for k, v in _VALID.items() if k != "attr2"}), "missing set.*attr2"),
        (json.dumps({**_VALID, "targ2": ["c", "d"]}), "'targ2' is not an object"),
        (json.dumps({**_VALID, "attr1": {"category": "A", "examples": []}}), "attr1.examples"),
        (json.dumps({**_VALID, "attr1": {"category": "A", "examples": ["e", 3]}}), "non-string"),
        (json.dumps({**_VALID, "targ1": {"examples": ["a"]}}), "targ1.category"),
    ],
)
def test_malformed_test_file_raises_data_format_error(
    tmp_path: Path, content: str, message: str
) -> None:
    # Prepare
    path = tmp_path / "broken.jsonl"
    path.write_text(content, encoding="utf-8")

    # Execute / Assert
    with pytest.raises(DataFormatError, match=message) as caught:
        load_bias_test(path)
    assert caught.value.path == path
    assert str(path) in str(caught.value)


def test_json_error_reports_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{\n"targ1": {\n  "category": "X",,\n}', encoding="utf-8")

    with pytest.raises(DataFormatError) as caught:
        load_bias_test(path)

    assert caught.value.line == 3
    assert f"{path}:3:" in str(caught.value)


def test_valid_minimal_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "mini.jsonl"
    path.write_text(json.dumps(_VALID), encoding="utf-8")

    test = load_bias_test(path)

    assert test.name == "mini"
    assert test.texts() == ["a", "b", "c", "d", "e", "f"]


def test_audit_runs_every_test_with_holm_and_stated_method(
    word_tests: list[BiasTest], embed: Embed
) -> None:
    done: list[tuple[int, int]] = []
    # Execute
    report = audit_embeddings(
        word_tests,
        embed,
        target="minilm",
        n_samples=20_000,
        seed=1,
        alpha=0.05,
        progress=lambda *step: done.append(step),
    )

    # Assert
    rows = {r["test"]: r for r in report.details["tests"]}
    assert list(rows) == WORD_WEAT
    assert done == [(i, len(WORD_WEAT)) for i in range(1, len(WORD_WEAT) + 1)]
    assert report.attack == "bias_audit"
    assert report.details["ddof"] == 1
    # weat6: 8 + 8 targets -> C(16, 8) = 12,870 partitions, enumerated.
    assert (rows["weat6"]["p_method"], rows["weat6"]["n_permutations"]) == ("exact", 12_870)
    # weat1: C(50, 25) partitions -> Monte Carlo with the stated sample count.
    assert (rows["weat1"]["p_method"], rows["weat1"]["n_permutations"]) == ("monte_carlo", 20_000)
    assert rows["weat1"]["n_partitions"] == str(math.comb(50, 25))
    p = [r["p_value"] for r in rows.values()]
    adjusted, reject = holm_bonferroni(p)
    assert [r["p_holm"] for r in rows.values()] == pytest.approx(list(adjusted))
    assert [r["significant"] for r in rows.values()] == reject.tolist()
    assert report.metrics["n_significant"] == float(reject.sum())
    assert report.metrics["weat1/effect_size"] == rows["weat1"]["effect_size"]
    # Flowers/insects vs pleasant/unpleasant is the textbook positive control: a sentence
    # encoder trained on web text reproduces it strongly.
    assert rows["weat1"]["effect_size"] > 1.0
    assert rows["weat1"]["p_holm"] < 0.01


def test_effect_sizes_equal_wefe_with_population_std(
    word_tests: list[BiasTest], embed: Embed
) -> None:
    """Cross-check against the peer library WEFE on identical embeddings (weat1-10).

    WEFE divides by the population standard deviation (``np.std``, ddof=0); with the same
    convention our effect sizes must equal WEFE's to 1e-6, and our default (sample,
    ddof=1, the SEAT reference code's) must differ by exactly sqrt(n / (n - 1)).
    """
    # Prepare
    pytest.importorskip(
        "wefe",
        reason=(
            "WEFE cross-check needs `pip install --no-deps wefe==1.0.1` plus gensim>=4.4, "
            "pandas, plotly, semantic_version, scikit-learn"
        ),
    )
    keyed_vectors_mod = pytest.importorskip("gensim.models.keyedvectors")
    wefe_metrics = pytest.importorskip("wefe.metrics")
    wefe_query = pytest.importorskip("wefe.query")
    wefe_model = pytest.importorskip("wefe.word_embedding_model")

    texts = sorted({t for test in word_tests for t in test.texts()})
    vectors = embed(texts)
    # float64 storage: WEFE's cosine then sees exactly our numbers (float32 storage
    # adds ~3e-7 of rounding to its effect sizes).
    keyed = keyed_vectors_mod.KeyedVectors(vector_size=vectors.shape[1], dtype=np.float64)
    keyed.add_vectors(texts, vectors.astype(np.float64))
    model = wefe_model.WordEmbeddingModel(keyed, "all-MiniLM-L6-v2")
    row = {t: i for i, t in enumerate(texts)}
    metric = wefe_metrics.WEAT()

    for test in word_tests:
        sets = [test.targ1, test.targ2, test.attr1, test.attr2]
        query = wefe_query.Query(
            [list(test.targ1.examples), list(test.targ2.examples)],
            [list(test.attr1.examples), list(test.attr2.examples)],
            [test.targ1.category, test.targ2.category],
            [test.attr1.category, test.attr2.category],
        )

        # Execute
        wefe_result = metric.run_query(query, model)
        x, y, a, b = (vectors[[row[t] for t in s.examples]] for s in sets)
        s_x, s_y = association(x, a, b), association(y, a, b)
        ours_population = effect_size(s_x, s_y, ddof=0)
        ours_sample = effect_size(s_x, s_y)

        # Assert
        assert ours_population == pytest.approx(wefe_result["effect_size"], abs=WEFE_TOLERANCE), (
            test.name
        )
        assert weat_statistic(s_x, s_y) == pytest.approx(wefe_result["weat"], abs=1e-5), test.name
        n = len(s_x) + len(s_y)
        assert ours_population == pytest.approx(ours_sample * math.sqrt(n / (n - 1)), rel=1e-12)


def test_identity_adapter_keeps_and_trained_adapter_changes_effect_sizes(
    encoder: Encoder, word_tests: list[BiasTest], embedding_cache_dir: Path
) -> None:
    # Prepare: a fresh residual adapter is the identity (zero-initialised W, b); a
    # perturbed one stands in for a trained adapter.
    cache = EmbeddingCache(embedding_cache_dir)
    tests = [t for t in word_tests if t.name in {"weat6", "weat7", "weat9"}]
    identity = Adapter(encoder.dimension, seed=0)
    perturbed = Adapter(encoder.dimension, seed=0)
    assert perturbed.linear is not None
    with torch.no_grad():
        perturbed.linear.weight.copy_(
            torch.randn(
                encoder.dimension, encoder.dimension, generator=torch.Generator().manual_seed(0)
            )
            * 0.2
        )

    # Execute
    base = run_bias_audit(tests, encoder, cache=cache)
    same = run_bias_audit(tests, encoder, cache=cache, adapter=identity)
    moved = run_bias_audit(tests, encoder, cache=cache, adapter=perturbed)

    # Assert
    def effects(report_rows: list[dict[str, Any]]) -> list[float]:
        return [float(r["effect_size"]) for r in report_rows]

    assert effects(same.details["tests"]) == pytest.approx(effects(base.details["tests"]), abs=1e-5)
    assert same.target.endswith("+ adapter")
    differences = np.abs(
        np.array(effects(moved.details["tests"])) - np.array(effects(base.details["tests"]))
    )
    assert differences.max() > 1e-3
