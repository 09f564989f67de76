"""A member's records for analysis: optional ids, a configurable label column, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics import load_labelled_texts
from embedding_core.errors import DataFormatError, DatasetNotFoundError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_without_ids_numbers_its_records_by_line(tmp_path: Path) -> None:
    # Prepare: BANKING77's own layout (text,category)
    path = _write(tmp_path / "r.csv", "text,category\nmy card is lost,lost_card\nrefund?,refund\n")
    # Execute
    records = load_labelled_texts(path, label_column="category")
    # Assert
    assert records.ids == ["2", "3"]
    assert records.texts == ["my card is lost", "refund?"]
    assert records.labels == ["lost_card", "refund"]
    assert records.class_counts() == {"lost_card": 1, "refund": 1}


def test_jsonl_with_an_id_column_keeps_its_ids(tmp_path: Path) -> None:
    lines = [{"id": 7, "body": "a", "y": "x"}, {"id": "b", "body": "c", "y": 3}]
    path = _write(tmp_path / "r.jsonl", "".join(json.dumps(r) + "\n" for r in lines))

    records = load_labelled_texts(path, text_column="body", label_column="y", id_column="id")

    assert records.ids == ["7", "b"]
    assert records.labels == ["x", "3"]


def test_without_a_label_column_labels_are_none_and_required_ones_say_the_flag(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "r.csv", "text\nhello\n")

    records = load_labelled_texts(path)

    assert records.labels is None
    with pytest.raises(DataFormatError, match="--label-column"):
        records.require_labels()


def test_a_label_column_absent_from_the_file_names_the_columns_it_has(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", "text,category\nhello,a\n")

    with pytest.raises(DataFormatError) as info:
        load_labelled_texts(path, label_column="intent")

    message = str(info.value)
    assert "'intent'" in message
    assert "'category'" in message
    assert "--label-column" in message
    assert f"{path}:2" in message


def test_an_empty_label_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", "text,category\nhello,a\nworld,\n")

    with pytest.raises(DataFormatError, match=r"r\.csv:3: .*empty label"):
        load_labelled_texts(path, label_column="category")


def test_a_missing_text_column_says_which_flag_fixes_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", "body,category\nhello,a\n")

    with pytest.raises(DataFormatError, match="--text-column"):
        load_labelled_texts(path, label_column="category")


def test_an_empty_file_and_a_missing_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="holds no documents"):
        load_labelled_texts(_write(tmp_path / "r.csv", "text,category\n"))
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_labelled_texts(tmp_path / "missing.csv")
