from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedding_core.data import BeirDataset, load_beir
from embedding_core.errors import DataFormatError, DatasetNotFoundError

CORPUS: list[dict[str, object]] = [
    {"_id": "d1", "title": "Title one", "text": "Body one.", "metadata": {}},
    {"_id": 2, "title": "", "text": "Body two.", "metadata": {}},
    {"_id": "d3", "title": "Only a title", "text": "", "metadata": {}},
]
QUERIES: list[dict[str, object]] = [
    {"_id": "q1", "text": "first query"},
    {"_id": 2, "text": "second query"},
    {"_id": "q3", "text": "train-only query"},
]
TEST_QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\n2\t2\t2\nq1\td3\t0\n"
TRAIN_QRELS = "query-id\tcorpus-id\tscore\nq3\td1\t1\n"


def _jsonl(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def write_beir(
    folder: Path,
    *,
    corpus: str | None = None,
    queries: str | None = None,
    test_qrels: str | None = None,
) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(corpus or _jsonl(CORPUS), encoding="utf-8")
    (folder / "queries.jsonl").write_text(queries or _jsonl(QUERIES), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(test_qrels or TEST_QRELS, encoding="utf-8")
    (folder / "qrels" / "train.tsv").write_text(TRAIN_QRELS, encoding="utf-8")
    return folder


def assert_points_at(error: pytest.ExceptionInfo[DataFormatError], name: str, line: int) -> None:
    message = str(error.value)
    assert f"{name}:{line}:" in message, message
    assert error.value.line == line
    assert error.value.path.name == name
    assert "Fix:" in message, message


# --- the real SciFact -------------------------------------------------------------


def test_scifact_test_split_counts(shared_data_dir: Path) -> None:
    # Execute
    dataset = load_beir(shared_data_dir / "scifact", split="test")

    # Assert
    assert isinstance(dataset, BeirDataset)
    assert dataset.name == "scifact"
    assert dataset.split == "test"
    assert len(dataset.corpus_ids) == len(dataset.corpus_texts) == 5183
    assert len(set(dataset.corpus_ids)) == 5183
    assert len(dataset.queries) == 300
    assert len(dataset.qrels) == 300
    assert dataset.num_judgements == 339
    assert set(dataset.queries) == set(dataset.qrels)


def test_scifact_train_split_counts(shared_data_dir: Path) -> None:
    # Execute
    dataset = load_beir(shared_data_dir / "scifact", split="train")

    # Assert
    assert dataset.num_docs == 5183
    assert len(dataset.queries) == 809
    assert dataset.num_judgements == 919


def test_scifact_document_text_is_title_and_text(shared_data_dir: Path) -> None:
    # Prepare
    with (shared_data_dir / "scifact" / "corpus.jsonl").open(encoding="utf-8") as handle:
        first = json.loads(handle.readline())

    # Execute
    dataset = load_beir(shared_data_dir / "scifact")

    # Assert
    assert dataset.corpus_ids[0] == first["_id"]
    assert dataset.corpus_texts[0] == f"{first['title']} {first['text']}".strip()


# --- a small hand-made dataset ----------------------------------------------------


def test_small_dataset_texts_ids_and_split_filter(tmp_path: Path) -> None:
    # Prepare
    folder = write_beir(tmp_path / "mini")

    # Execute
    dataset = load_beir(folder, split="test", name="tiny")

    # Assert
    assert dataset.name == "tiny"
    assert dataset.corpus_ids == ["d1", "2", "d3"]
    assert dataset.corpus_texts == ["Title one Body one.", "Body two.", "Only a title"]
    assert dataset.queries == {"q1": "first query", "2": "second query"}
    assert dataset.qrels == {"q1": {"d1": 1, "d3": 0}, "2": {"2": 2}}


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    # Prepare
    folder = write_beir(tmp_path / "mini", corpus="\n" + _jsonl(CORPUS) + "\n  \n")

    # Execute
    dataset = load_beir(folder)

    # Assert
    assert dataset.num_docs == 3


def test_missing_split_lists_available(tmp_path: Path) -> None:
    # Prepare
    folder = write_beir(tmp_path / "mini")

    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        load_beir(folder, split="dev")

    # Assert
    assert "dev.tsv" in str(caught.value)
    assert "test, train" in str(caught.value)


def test_missing_folder(tmp_path: Path) -> None:
    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        load_beir(tmp_path / "absent")

    # Assert
    assert str(tmp_path / "absent") in str(caught.value)


@pytest.mark.parametrize(
    ("corpus_lines", "line", "needle"),
    [
        pytest.param(['{"_id": "a", "text": "x"}', "{not json"], 2, "invalid JSON", id="bad-json"),
        pytest.param(['["a", "b"]'], 1, "not an object", id="not-object"),
        pytest.param(['{"_id": "a", "text": "x"}', '{"text": "y"}'], 2, '"_id"', id="no-id"),
        pytest.param(['{"_id": null, "text": "y"}'], 1, '"_id"', id="null-id"),
        pytest.param(['{"_id": "a", "title": " ", "text": ""}'], 1, "empty", id="empty-doc"),
        pytest.param(
            ['{"_id": "a", "text": "x"}', '{"_id": "b", "text": "y"}', '{"_id": "a", "text": "z"}'],
            3,
            "first seen on line 1",
            id="duplicate",
        ),
        pytest.param(['{"_id": "a", "text": 5}'], 1, "not a string", id="text-not-string"),
    ],
)
def test_malformed_corpus(tmp_path: Path, corpus_lines: list[str], line: int, needle: str) -> None:
    # Prepare
    folder = write_beir(tmp_path / "mini", corpus="\n".join(corpus_lines) + "\n")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_beir(folder)

    # Assert
    assert_points_at(caught, "corpus.jsonl", line)
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("query_lines", "line", "needle"),
    [
        pytest.param(['{"_id": "q1", "text": "ok"}', "nope"], 2, "invalid JSON", id="bad-json"),
        pytest.param(['{"text": "ok"}'], 1, '"_id"', id="no-id"),
        pytest.param(['{"_id": "q1", "text": "  "}'], 1, "empty", id="empty-query"),
        pytest.param(['{"_id": "q1"}'], 1, "empty", id="no-text"),
        pytest.param(
            ['{"_id": "q1", "text": "a"}', '{"_id": "q1", "text": "b"}'],
            2,
            "first seen on line 1",
            id="duplicate",
        ),
    ],
)
def test_malformed_queries(tmp_path: Path, query_lines: list[str], line: int, needle: str) -> None:
    # Prepare
    folder = write_beir(tmp_path / "mini", queries="\n".join(query_lines) + "\n")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_beir(folder)

    # Assert
    assert_points_at(caught, "queries.jsonl", line)
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("qrels", "line", "needle"),
    [
        pytest.param("qid\tdid\tscore\nq1\td1\t1\n", 1, "wrong header", id="header"),
        pytest.param("query-id\tcorpus-id\tscore\nq1\td1\n", 2, "2 tab-separated", id="columns"),
        pytest.param(
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td3\thigh\n", 3, "not an integer", id="score"
        ),
        pytest.param(
            "query-id\tcorpus-id\tscore\nq9\td1\t1\n", 2, "'q9' is not in queries", id="query"
        ),
        pytest.param(
            "query-id\tcorpus-id\tscore\n\nq1\tzz\t1\n", 3, "'zz' is not in corpus", id="doc"
        ),
        pytest.param(
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t2\n", 3, "conflicting", id="conflict"
        ),
    ],
)
def test_malformed_qrels(tmp_path: Path, qrels: str, line: int, needle: str) -> None:
    # Prepare
    folder = write_beir(tmp_path / "mini", test_qrels=qrels)

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_beir(folder)

    # Assert
    assert_points_at(caught, "test.tsv", line)
    assert needle in str(caught.value)


def test_qrels_without_judgements(tmp_path: Path) -> None:
    # Prepare
    folder = write_beir(tmp_path / "mini", test_qrels="query-id\tcorpus-id\tscore\n")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_beir(folder)

    # Assert
    assert "test.tsv" in str(caught.value)
    assert "no judgements" in str(caught.value)
