"""``fedembed node analyse classify`` / ``predict`` on BANKING77 records, through ``main``."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold

from analytics.labelled_texts import load_labelled_texts
from client_node.analysis.classify import predict, train_classifier
from client_node.analysis.record_vectors import RecordEncoder
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND
from embedding_core.errors import FedembedError
from tests.client_node.analysis.records import (
    Runner,
    assert_one_clear_error,
    banking77,
    first_of_each,
    last_json,
    random_adapter,
    spread_intents,
    write_csv,
)

PER_INTENT = 20
INTENTS = 6
JSON_KEYS = {"accuracy", "macro_f1", "folds", "classes", "records"}


@pytest.fixture(scope="module")
def records(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """20 train records of 6 spread-out intents; their test records; broken variants."""
    folder = tmp_path_factory.mktemp("classify")
    train = banking77(shared_data_dir, "train")
    test = banking77(shared_data_dir, "test")
    intents = spread_intents(train, 77 // INTENTS, INTENTS)
    chosen = first_of_each(train, intents, PER_INTENT)
    fields = ["text", "category"]
    rare = chosen + [r for r in train if r["category"] not in intents][:2]
    return {
        "train": write_csv(folder / "train.csv", chosen, fields),
        "test": write_csv(
            folder / "test.csv", [r for r in test if r["category"] in intents], fields
        ),
        "one_class": write_csv(folder / "one_class.csv", chosen[:PER_INTENT], fields),
        "rare": write_csv(folder / "rare.csv", rare, fields),
        "empty": write_csv(folder / "empty.csv", [], fields),
    }


@pytest.fixture
def run(analyse: Runner) -> Runner:
    """Run ``fedembed node analyse COMMAND ARGS``: (exit code, out, err)."""
    return analyse


def test_classify_then_predict_scores_saves_and_labels_new_records(
    run: Any, records: dict[str, Path], tmp_path: Path, embedding_cache_dir: Path
) -> None:
    # Execute
    code, out, err = run(
        "classify", "--input", str(records["train"]), "--label-column", "category",
        "--folds", "4", "--out", str(tmp_path / "clf"), "--json",
    )  # fmt: skip
    p_code, p_out, p_err = run(
        "predict", "--classifier", str(tmp_path / "clf"), "--input", str(records["test"]),
        "--label-column", "category", "--out", str(tmp_path / "pred.jsonl"), "--json",
    )  # fmt: skip
    # Assert: the CV scores are scikit-learn's on the same vectors, folds and C
    assert code == 0, err
    result = last_json(out)
    assert set(result) >= JSON_KEYS
    assert (result["records"], result["classes"], result["folds"]) == (120, 6, 4)
    loaded = load_labelled_texts(records["train"], label_column="category")
    vectors = RecordEncoder(cache_dir=embedding_cache_dir).encode(loaded.texts)
    labels = np.array(loaded.labels)
    splitter = StratifiedKFold(n_splits=4, shuffle=True, random_state=0)
    reference = [
        accuracy_score(
            labels[te],
            LogisticRegression(C=result["c"], max_iter=1000)
            .fit(vectors[tr], labels[tr])
            .predict(vectors[te]),
        )
        for tr, te in splitter.split(vectors, labels)
    ]
    assert result["accuracy"] == pytest.approx(np.mean(reference), abs=0.02)
    assert result["accuracy"] > 0.7  # 6 intents: chance is 0.17
    manifest = json.loads((tmp_path / "clf" / "manifest.json").read_text())
    weights = (tmp_path / "clf" / manifest["weights_file"]).read_bytes()
    assert manifest["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert manifest["encoder"]["encoder_backend"] == DEFAULT_ENCODER_BACKEND
    assert manifest["metrics"]["accuracy"] == result["accuracy"]
    # predict: one line per test record, labels among the classes, accuracy reported
    assert p_code == 0, p_err
    predicted = last_json(p_out)
    rows = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert predicted["records"] == len(rows) == 240
    assert {r["label"] for r in rows} <= set(manifest["classes"])
    assert all(r["top"][0] == [r["label"], r["probability"]] for r in rows)
    truth = [r["category"] for r in csv.DictReader(records["test"].open(encoding="utf-8"))]
    assert predicted["accuracy"] == pytest.approx(
        np.mean([r["label"] == t for r, t in zip(rows, truth, strict=True)])
    )
    assert predicted["accuracy"] > 0.7
    assert [r["id"] for r in rows] == load_labelled_texts(records["test"]).ids
    first_text = next(csv.DictReader(records["test"].open(encoding="utf-8")))["text"]
    assert first_text not in out + err + p_out + p_err


def test_adapter_is_recorded_reused_at_predict_and_another_space_refused(
    records: dict[str, Path], tmp_path: Path, embedding_cache_dir: Path
) -> None:
    # Prepare: two different adapters on the bundled encoder
    for name, seed in (("adapter", 1), ("other", 2)):
        random_adapter(tmp_path / name, seed=seed, scale=0.2)
    train = load_labelled_texts(records["train"], label_column="category")
    adapted = RecordEncoder(adapter=tmp_path / "adapter", cache_dir=embedding_cache_dir)
    plain = RecordEncoder(cache_dir=embedding_cache_dir)
    other = RecordEncoder(adapter=tmp_path / "other", cache_dir=embedding_cache_dir)
    # Execute
    report = train_classifier(train, adapted, out=tmp_path / "clf", folds=3, seed=0)
    same = predict(tmp_path / "clf", train.texts[:10], adapted)
    # Assert
    manifest = json.loads((tmp_path / "clf" / "manifest.json").read_text())
    adapter_manifest = json.loads((tmp_path / "adapter" / "adapter.json").read_text())
    assert manifest["encoder"]["adapter_sha256"] == adapter_manifest["weights_sha256"]
    assert report.accuracy > 0.5
    assert same.probabilities.shape == (10, INTENTS)
    assert np.allclose(same.probabilities.sum(axis=1), 1.0)
    for wrong in (plain, other):
        with pytest.raises(FedembedError, match="another encoder space") as raised:
            predict(tmp_path / "clf", train.texts[:10], wrong)
        assert "--adapter" in str(raised.value)


def test_predict_from_the_cli_reuses_the_recorded_adapter(
    run: Any, records: dict[str, Path], tmp_path: Path
) -> None:
    random_adapter(tmp_path / "adapter", seed=3, scale=0.05, kind="shift")

    code, out, err = run(
        "classify", "--input", str(records["train"]), "--label-column", "category",
        "--folds", "3", "--adapter", str(tmp_path / "adapter"), "--out", str(tmp_path / "clf"),
        "--json",
    )  # fmt: skip
    p_code, p_out, p_err = run(
        "predict", "--classifier", str(tmp_path / "clf"), "--input", str(records["train"]),
        "--out", str(tmp_path / "pred.jsonl"), "--json",
    )  # fmt: skip

    assert code == 0, err
    assert last_json(out)["adapter"] == str(tmp_path / "adapter")
    assert p_code == 0, p_err
    assert last_json(p_out)["records"] == PER_INTENT * INTENTS


@pytest.mark.parametrize(
    ("case", "args", "expected"),
    [
        ("train", [], "--label-column"),
        ("train", ["--label-column", "intent"], "'intent'"),
        ("one_class", ["--label-column", "category"], "one class only"),
        ("rare", ["--label-column", "category", "--folds", "5"], "fewer records than --folds 5"),
        ("empty", ["--label-column", "category"], "no documents"),
    ],
)
def test_bad_input_is_one_clear_error_in_cli_words(
    run: Any, records: dict[str, Path], tmp_path: Path, case: str, args: list[str], expected: str
) -> None:
    code, _, err = run("classify", "--input", str(records[case]), "--out", str(tmp_path), *args)

    assert_one_clear_error(code, err, expected)
    assert not (tmp_path / "manifest.json").exists()


def test_predict_refuses_a_folder_without_a_classifier_and_tampered_weights(
    run: Any, records: dict[str, Path], tmp_path: Path
) -> None:
    code, _, err = run("predict", "--classifier", str(tmp_path), "--input", str(records["test"]))
    assert code == 2
    assert "--classifier" in err

    run(
        "classify", "--input", str(records["train"]), "--label-column", "category",
        "--folds", "2", "--out", str(tmp_path / "clf"),
    )  # fmt: skip
    weights = tmp_path / "clf" / "classifier.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    code, _, err = run(
        "predict", "--classifier", str(tmp_path / "clf"), "--input", str(records["test"]),
        "--out", str(tmp_path / "pred.jsonl"),
    )  # fmt: skip
    assert code == 2
    assert "SHA-256" in err
    assert not (tmp_path / "pred.jsonl").exists()


def test_the_cli_default_c_is_the_classifier_s() -> None:
    from analytics.linear_classifier import DEFAULT_C
    from client_node.analysis import classify_cli

    assert classify_cli._DEFAULT_C == DEFAULT_C
