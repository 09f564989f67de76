"""``fedembed node analyse predict --classifier classifier_head.json``: the consortium's head.

The head here is written at test time in the format a ``task='classifier'`` run publishes
(``coordinator/classifier_strategy.py``): a nearest-class-mean linear head on the bundled
encoder's vectors of 6 BANKING77 intents, so its predictions are known to be good and
the command's job (encode locally with the head's backend, score, write one line a
record) is what is tested.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analytics.labelled_texts import load_labelled_texts
from client_node.analysis.record_vectors import RecordEncoder
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND
from tests.client_node.analysis.records import (
    Runner,
    assert_one_clear_error,
    banking77,
    first_of_each,
    jsonl,
    last_json,
    spread_intents,
    write_csv,
)

INTENTS = 6
PER_INTENT = 20
SCALE = 20.0


@pytest.fixture(scope="module")
def files(
    shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, embedding_cache_dir: Path
) -> dict[str, Path]:
    """A published head (class means of 20 train texts per intent) and test records."""
    folder = tmp_path_factory.mktemp("head")
    train = banking77(shared_data_dir, "train")
    test = banking77(shared_data_dir, "test")
    intents = spread_intents(train, 77 // INTENTS, INTENTS)
    fields = ["text", "category"]
    train_csv = write_csv(folder / "train.csv", first_of_each(train, intents, PER_INTENT), fields)
    test_csv = write_csv(folder / "test.csv", [r for r in test if r["category"] in intents], fields)
    records = load_labelled_texts(train_csv, label_column="category")
    vectors = RecordEncoder(cache_dir=embedding_cache_dir).encode(records.texts)
    labels = np.array(records.labels)
    means = np.stack([vectors[labels == name].mean(axis=0) for name in intents])
    head = {
        "task": "classifier",
        "run_tag": "run-7",
        "labels": intents,
        "dim": int(means.shape[1]),
        "encoder_backend": DEFAULT_ENCODER_BACKEND,
        "weights": (SCALE * means).tolist(),
        "bias": (-SCALE * 0.5 * np.einsum("kd,kd->k", means, means)).tolist(),
        "privacy": {"epsilon": 8.0, "delta": 1e-5, "observer": "fellow_member"},
    }
    head_file = folder / "classifier_head.json"
    head_file.write_text(json.dumps(head))
    not_head = folder / "kmeans_centroids.json"
    not_head.write_text(json.dumps({**head, "task": "kmeans"}))
    return {"head": head_file, "not_head": not_head, "test": test_csv}


def test_the_consortium_head_labels_the_nodes_records(
    analyse: Runner, files: dict[str, Path], tmp_path: Path
) -> None:
    # Execute
    code, out, err = analyse(
        "predict", "--classifier", str(files["head"]), "--input", str(files["test"]),
        "--label-column", "category", "--out", str(tmp_path / "pred.jsonl"), "--json",
    )  # fmt: skip
    # Assert: one line a record, labels from the public set, accuracy far above chance
    assert code == 0, err
    result: dict[str, Any] = last_json(out)
    rows = jsonl(tmp_path / "pred.jsonl")
    assert result["records"] == len(rows) == 240
    assert result["classifier"] == "consortium head"
    assert (result["head_run"], result["head_epsilon"]) == ("run-7", 8.0)
    head = json.loads(files["head"].read_text())
    assert {r["label"] for r in rows} <= set(head["labels"])
    assert all(r["top"][0] == [r["label"], r["probability"]] for r in rows)
    assert all(r["top"][0][1] >= r["top"][1][1] >= r["top"][2][1] for r in rows)
    assert result["accuracy"] > 0.8  # 6 intents: chance is 0.17


@pytest.mark.parametrize(
    ("extra", "which", "message"),
    [
        (["--adapter", "{adapter}"], "head", "--adapter was given with the consortium head"),
        (["--encoder-backend", "torch"], "head", "--encoder-backend torch was given"),
        ([], "not_head", "is not a classifier head"),
        ([], "garbage", "cannot read the classifier head"),
    ],
)
def test_a_head_read_in_another_space_or_not_a_head_is_refused(
    analyse: Runner,
    files: dict[str, Path],
    tmp_path: Path,
    extra: list[str],
    which: str,
    message: str,
) -> None:
    # Prepare
    (tmp_path / "adapter").mkdir()
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    target = garbage if which == "garbage" else files[which]
    args = [a.format(adapter=tmp_path / "adapter") for a in extra]
    # Execute
    code, _, err = analyse(
        "predict", "--classifier", str(target), "--input", str(files["test"]),
        "--out", str(tmp_path / "pred.jsonl"), *args,
    )  # fmt: skip
    # Assert
    assert_one_clear_error(code, err, message)
    assert not (tmp_path / "pred.jsonl").exists()
