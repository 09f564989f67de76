"""Bias audit: the sent-bias suite on the real encoder, an auditor's own tests, WEFE, errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from attacks.bias_audit import (
    BiasTest,
    Embed,
    TextSet,
    audit_embeddings,
    collect_bias_tests,
    load_bias_folder,
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


# -- the auditor's own tests -----------------------------------------------------------------


def _seat(
    targ1: Sequence[str], targ2: Sequence[str], attr1: Sequence[str], attr2: Sequence[str]
) -> dict[str, Any]:
    names = ("X", "Y", "A", "B")
    sets = (targ1, targ2, attr1, attr2)
    return {
        key: {"category": name, "examples": list(examples)}
        for key, name, examples in zip(
            ("targ1", "targ2", "attr1", "attr2"), names, sets, strict=True
        )
    }


def _write(folder: Path, name: str, test: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text(json.dumps(test), encoding="utf-8")
    return path


def _hashed_embed(texts: Sequence[str]) -> NDArray[np.float32]:
    """A deterministic stand-in encoder: each text's vector is seeded by its SHA-256."""
    rows = [
        np.random.default_rng(
            int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "big")
        ).normal(size=16)
        for t in texts
    ]
    return np.asarray(rows, dtype=np.float32)


def test_a_folder_without_the_default_tests_loads_every_file_in_natural_order(
    tmp_path: Path,
) -> None:
    # Prepare: names the suite never uses
    for name in ("hiring12", "hiring2", "loans"):
        _write(tmp_path, name, _VALID)

    # Execute
    tests = load_bias_folder(tmp_path)

    # Assert
    assert [t.name for t in tests] == ["hiring2", "hiring12", "loans"]
    assert tests[0].path == tmp_path / "hiring2.jsonl"
    assert tests[0].file_name == "hiring2"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "absent", "--tests .*absent: no such folder"),
        (lambda p: _write(p, "one", _VALID), "--tests .*one.jsonl is a file"),
        (lambda p: p, "--tests .* holds no \\*.jsonl file"),
    ],
)
def test_bad_test_folder_says_so_in_the_callers_words(
    tmp_path: Path, make: Any, message: str
) -> None:
    # Prepare
    (tmp_path / "notes.txt").write_text("not a test", encoding="utf-8")
    folder = make(tmp_path)

    # Execute / Assert
    with pytest.raises(DatasetNotFoundError, match=message) as caught:
        load_bias_folder(folder, option="--tests")
    assert "targ1" in str(caught.value)  # says what a test file must hold


def test_a_malformed_file_in_a_folder_names_the_file(tmp_path: Path) -> None:
    _write(tmp_path, "good", _VALID)
    bad = _write(tmp_path, "bad", {k: v for k, v in _VALID.items() if k != "targ2"})

    with pytest.raises(DataFormatError, match=r"missing set.*targ2") as caught:
        load_bias_folder(tmp_path)

    assert caught.value.path == bad
    assert "sent-bias format" in str(caught.value)


def test_same_file_name_in_two_folders_is_disambiguated_and_a_repeated_folder_counted_once(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    # Prepare: mine/weat1 clashes with the suite's weat1; two folders both called "x".
    mine = tmp_path / "mine"
    _write(mine, "weat1", _VALID)
    _write(mine, "own", _VALID)
    _write(tmp_path / "a" / "x", "twin", _VALID)
    _write(tmp_path / "b" / "x", "twin", _VALID)
    suite = [t for t in load_bias_tests(shared_data_dir) if t.name in {"weat1", "weat2"}]

    # Execute
    tests, renamed = collect_bias_tests(
        [
            suite,
            load_bias_folder(mine),
            load_bias_folder(mine),
            load_bias_folder(tmp_path / "a" / "x"),
            load_bias_folder(tmp_path / "b" / "x"),
        ]
    )

    # Assert
    names = [t.name for t in tests]
    assert names[:4] == ["tests/weat1", "weat2", "own", "mine/weat1"]
    assert names[4:] == [f"{tmp_path / 'a' / 'x'}/twin", f"{tmp_path / 'b' / 'x'}/twin"]
    assert renamed["weat1"] == ["tests/weat1", "mine/weat1"]
    assert tests[0].file_name == "weat1"


def test_quick_names_keep_only_the_tests_the_suite_holds(shared_data_dir: Path) -> None:
    # Execute
    some = load_bias_tests(shared_data_dir, names=["weat1", "weat7", "not-a-test"])
    none_held = load_bias_tests(shared_data_dir, names=["not-a-test"])

    # Assert
    assert [t.name for t in some] == ["weat1", "weat7"]
    assert len(none_held) == N_SUITE_TESTS


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(str.strip)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sets=st.lists(st.lists(_TEXT, min_size=1, max_size=6), min_size=4, max_size=4))
def test_any_seat_file_round_trips(tmp_path: Path, sets: list[list[str]]) -> None:
    # Prepare
    path = _write(tmp_path, "roundtrip", _seat(*sets))

    # Execute
    test = load_bias_test(path)

    # Assert
    assert [list(s.examples) for s in (test.targ1, test.targ2, test.attr1, test.attr2)] == sets
    assert test.texts() == [t for s in sets for t in s]


_SIZES = [(n, n) for n in range(1, 13)] + [(1, 4), (3, 7), (12, 5), (2, 9)]


def _associations(
    vectors: dict[str, NDArray[np.float64]], test: dict[str, Any]
) -> tuple[list[float], list[float]]:
    """s(w, A, B) by its definition, for the test's two target sets."""

    def unit(text: str) -> NDArray[np.float64]:
        v = vectors[text].astype(np.float64)
        return v / np.linalg.norm(v)

    def s(word: str) -> float:
        a = [float(unit(word) @ unit(t)) for t in test["attr1"]["examples"]]
        b = [float(unit(word) @ unit(t)) for t in test["attr2"]["examples"]]
        return sum(a) / len(a) - sum(b) / len(b)

    return [s(w) for w in test["targ1"]["examples"]], [s(w) for w in test["targ2"]["examples"]]


def test_tests_of_every_size_get_brute_force_p_values_and_a_power_column(tmp_path: Path) -> None:
    # Prepare: 1-vs-1 to 12-vs-12 and unequal sizes, in a folder without the suite.
    written = {}
    for n_x, n_y in _SIZES:
        name = f"size{n_x}v{n_y}"
        written[name] = _seat(
            [f"{name} x{i}" for i in range(n_x)],
            [f"{name} y{i}" for i in range(n_y)],
            [f"{name} a{i}" for i in range(3)],
            [f"{name} b{i}" for i in range(4)],
        )
        _write(tmp_path, name, written[name])
    tests = load_bias_folder(tmp_path, option="--tests")

    # Execute
    report = audit_embeddings(tests, _hashed_embed, target="hashed", alpha=0.05)

    # Assert
    rows = {r["test"]: r for r in report.details["tests"]}
    m = len(_SIZES)
    assert set(rows) == set(written)
    assert report.details["family_size"] == m
    texts = sorted({t for test in tests for t in test.texts()})
    vectors = dict(zip(texts, _hashed_embed(texts).astype(np.float64), strict=True))
    for name, row in rows.items():
        n_x, n_y = row["sizes"][:2]
        equal = n_x == n_y
        p_min = (2 if equal else 1) / math.comb(n_x + n_y, n_x)
        assert row["p_method"] == "exact"
        assert row["alternative"] == "two-sided"
        assert row["p_min"] == pytest.approx(p_min)
        assert row["reachable"] == (p_min * m <= 0.05)
        assert row["power"].startswith("reachable" if row["reachable"] else "underpowered")
        if not row["reachable"]:
            assert row["verdict"].startswith("underpowered")
        if n_x + n_y <= 14:
            s_x, s_y = _associations(vectors, written[name])
            assert row["p_value"] == pytest.approx(_brute_force_two_sided(s_x, s_y), abs=1e-12), (
                name
            )
        n = n_x + n_y
        if row["effect_size_sample"] is not None and n > 2:
            ratio = math.sqrt(n / (n - 1))
            assert row["effect_size_population"] == pytest.approx(row["effect_size_sample"] * ratio)
    assert rows["size1v1"]["power"].endswith("(never significant)")
    assert rows["size12v12"]["reachable"]


def _brute_force_two_sided(s_x: list[float], s_y: list[float]) -> float:
    pooled = s_x + s_y

    def gap(chosen: tuple[int, ...]) -> float:
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        return abs(sum(pooled[i] for i in chosen) / len(chosen) - sum(rest) / len(rest))

    observed = gap(tuple(range(len(s_x))))
    combos = list(itertools.combinations(range(len(pooled)), len(s_x)))
    return sum(gap(c) >= observed - 1e-9 for c in combos) / len(combos)


def test_a_strong_reversed_effect_is_significant_two_sided_and_judged_by_its_size() -> None:
    # Prepare: A along e1, B along e2; targ1 leans to B, targ2 to A: a reversed association.
    vectors: dict[str, list[float]] = {"a": [1.0, 0.0, 0.1], "b": [0.0, 1.0, 0.1]}
    for i in range(8):
        vectors[f"x{i}"] = [0.2 + 0.01 * i, 1.0, 0.3]  # near B
        vectors[f"y{i}"] = [1.0, 0.2 + 0.01 * i, 0.3]  # near A
    test = BiasTest(
        "reversed",
        TextSet("X", tuple(f"x{i}" for i in range(8))),
        TextSet("Y", tuple(f"y{i}" for i in range(8))),
        TextSet("A", ("a",)),
        TextSet("B", ("b",)),
    )

    def embed(texts: Sequence[str]) -> NDArray[np.float32]:
        return np.asarray([vectors[t] for t in texts], dtype=np.float32)

    # Execute
    two_sided = audit_embeddings([test], embed, target="toy")
    one_sided = audit_embeddings([test], embed, target="toy", alternative="greater")

    # Assert
    row = two_sided.details["tests"][0]
    assert row["effect_size_sample"] < -1.5
    assert row["p_value"] == pytest.approx(2 / math.comb(16, 8))  # only X and its mirror
    assert row["significant"]
    assert row["direction"] == "X ~ B (vs Y)"
    assert not one_sided.details["tests"][0]["significant"]
    assert one_sided.details["tests"][0]["p_value"] == 1.0
