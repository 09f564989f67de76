from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedding_core.data import Document, load_documents
from embedding_core.errors import DataFormatError, DatasetNotFoundError


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def write_delimited(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


def assert_points_at(error: pytest.ExceptionInfo[DataFormatError], name: str, line: int) -> None:
    message = str(error.value)
    assert f"{name}:{line}:" in message, message
    assert "Fix:" in message, message


# --- happy paths ------------------------------------------------------------------


def test_jsonl_ids_coerced_and_metadata_kept(tmp_path: Path) -> None:
    # Prepare
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [{"id": 7, "text": "seven", "lang": "en"}, {"id": "b", "text": "bee", "tags": [1, 2]}],
    )

    # Execute
    documents = load_documents(path)

    # Assert
    assert documents == [
        Document("7", "seven", {"lang": "en"}),
        Document("b", "bee", {"tags": [1, 2]}),
    ]


def test_custom_columns_and_explicit_format(tmp_path: Path) -> None:
    # Prepare
    path = write_delimited(
        tmp_path / "export.txt", [["doc", "body", "x"], ["1", "hello", "y"]], delimiter="\t"
    )

    # Execute
    documents = load_documents(path, id_column="doc", text_column="body", file_format="tsv")

    # Assert
    assert documents == [Document("1", "hello", {"x": "y"})]


def test_parquet_ints_become_strings(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": [1, 2], "text": ["a", "b"], "score": [0.5, 1.5]}), path)

    # Execute
    documents = load_documents(path)

    # Assert
    assert documents == [Document("1", "a", {"score": 0.5}), Document("2", "b", {"score": 1.5})]


# --- errors -----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        load_documents(tmp_path / "absent.jsonl")

    # Assert
    assert "absent.jsonl" in str(caught.value)


def test_unknown_suffix_lists_supported(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "docs.xlsx"
    path.write_text("x", encoding="utf-8")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path)

    # Assert
    message = str(caught.value)
    for suffix in (".jsonl", ".ndjson", ".csv", ".tsv", ".parquet"):
        assert suffix in message
    assert "Fix:" in message


def test_unknown_explicit_format(tmp_path: Path) -> None:
    # Prepare
    path = write_jsonl(tmp_path / "docs.jsonl", [{"id": 1, "text": "a"}])

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path, file_format="xml")

    # Assert
    assert "'xml'" in str(caught.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    # Prepare
    path = tmp_path / f"docs{suffix}"
    path.write_text("" if suffix == ".jsonl" else "id,text\n", encoding="utf-8")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path)

    # Assert
    assert "no documents" in str(caught.value)


@pytest.mark.parametrize(
    ("lines", "line", "needle"),
    [
        pytest.param(['{"id": 1, "text": "a"}', "{oops"], 2, "invalid JSON", id="bad-json"),
        pytest.param(['{"id": 1, "body": "a"}'], 1, "pass --id-column/--text-column", id="no-text"),
        pytest.param(['{"id": null, "text": "a"}'], 1, "null", id="null-id"),
        pytest.param(['{"id": 1, "text": "a"}', '{"id": 2, "text": " \\t "}'], 2, "empty", id="ws"),
        pytest.param(['{"id": 1, "text": ["a"]}'], 1, "not a string", id="text-list"),
        pytest.param(
            ['{"id": 1, "text": "a"}', "", '{"id": "1", "text": "b"}'],
            3,
            "duplicate id '1' (first seen on line 1)",
            id="duplicate",
        ),
    ],
)
def test_malformed_jsonl(tmp_path: Path, lines: list[str], line: int, needle: str) -> None:
    # Prepare
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path)

    # Assert
    assert_points_at(caught, "docs.jsonl", line)
    assert needle in str(caught.value)


def test_missing_column_lists_existing(tmp_path: Path) -> None:
    # Prepare
    path = write_jsonl(tmp_path / "docs.jsonl", [{"doc_id": 1, "content": "a"}])

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path)

    # Assert
    message = str(caught.value)
    assert "'doc_id', 'content'" in message
    assert "pass --id-column/--text-column" in message


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        pytest.param("title,body\nx,y\n", 1, "'title', 'body'", id="header-missing-columns"),
        pytest.param("id,text\n1,a\n2,\n", 3, "empty", id="empty-text"),
        pytest.param('id,text\n1,"multi\nline"\n1,b\n', 4, "first seen on line 2", id="dup"),
        pytest.param("id,text\n1,a\n2,b,c\n", 3, "3 fields but the header has 2", id="fields"),
        pytest.param("id,text\n,a\n", 2, "null, empty", id="empty-id"),
    ],
)
def test_malformed_csv(tmp_path: Path, text: str, line: int, needle: str) -> None:
    # Prepare
    path = tmp_path / "docs.csv"
    path.write_bytes(text.encode("utf-8"))

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path)

    # Assert
    assert_points_at(caught, "docs.csv", line)
    assert needle in str(caught.value)


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a", None, "c"], "text": ["x", "y", "z"]}), path)

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path)

    # Assert
    assert_points_at(caught, "docs.parquet", 2)
    assert "row 2" in str(caught.value)


def test_parquet_duplicate_ids(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "a"], "text": ["x", "y", "z"]}), path)

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path)

    # Assert
    assert_points_at(caught, "docs.parquet", 3)
    assert "first seen on row 1" in str(caught.value)


def test_parquet_missing_column(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), path)

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path)

    # Assert
    assert "'id', 'body'" in str(caught.value)
    assert "--text-column" in str(caught.value)


def test_corrupt_parquet(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "docs.parquet"
    path.write_bytes(b"not parquet at all")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_documents(path)

    # Assert
    assert "unreadable Parquet" in str(caught.value)


# --- round trip -------------------------------------------------------------------

_texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda t: t.strip() != "")
_docs = st.dictionaries(
    keys=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12),
    values=_texts,
    min_size=1,
    max_size=15,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(docs=_docs)
def test_round_trip_all_formats(tmp_path: Path, docs: dict[str, str]) -> None:
    # Prepare
    expected = [Document(doc_id, text) for doc_id, text in docs.items()]
    jsonl = write_jsonl(tmp_path / "rt.jsonl", [{"id": d.id, "text": d.text} for d in expected])
    rows = [["id", "text"], *([d.id, d.text] for d in expected)]
    csv_path = write_delimited(tmp_path / "rt.csv", rows)
    tsv_path = write_delimited(tmp_path / "rt.tsv", rows, delimiter="\t")
    parquet = tmp_path / "rt.parquet"
    pq.write_table(pa.table({"id": list(docs), "text": list(docs.values())}), parquet)

    # Execute
    loaded = [load_documents(p) for p in (jsonl, csv_path, tsv_path, parquet)]

    # Assert
    for documents in loaded:
        assert documents == expected
