"""A node's data folder: its privacy units (one person, else one query) and their checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from client_node.node_data import load_node_data
from embedding_core.errors import DataFormatError


def _node(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir()
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(4)]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_records_of_one_query_id_or_one_query_text_are_one_unit(tmp_path: Path) -> None:
    # Prepare: q1 has two documents; q2 and q3 are the same text under two ids.
    records = [
        {"query_id": "q1", "query": "what is a cell", "doc_id": "d0"},
        {"query_id": "q1", "query": "what is a cell", "doc_id": "d1"},
        {"query_id": "q2", "query": "how do genes work", "doc_id": "d2"},
        {"query_id": "q3", "query": "how do genes work", "doc_id": "d3"},
        {"query_id": "q4", "query": "why is the sky blue", "doc_id": "d3"},
    ]
    # Execute
    data = load_node_data(_node(tmp_path / "node", records))
    units = data.unit_ids().tolist()
    # Assert
    assert units == [0, 0, 1, 1, 2]
    assert data.num_units == 3


def test_a_person_column_makes_one_person_one_unit(tmp_path: Path) -> None:
    # Prepare: person a asked two queries; person 7 asked the same text as a's first one.
    records: list[dict[str, Any]] = [
        {"query_id": "q1", "query": "what is a cell", "doc_id": "d0", "person_id": "a"},
        {"query_id": "q2", "query": "how do genes work", "doc_id": "d1", "person_id": "a"},
        {"query_id": "q3", "query": "what is a cell", "doc_id": "d2", "person_id": 7},
    ]
    # Execute
    data = load_node_data(_node(tmp_path / "node", records))
    # Assert
    assert data.unit_ids().tolist() == [0, 0, 1]
    assert data.interactions[2].person_id == "7"


@pytest.mark.parametrize(
    "people",
    [["a", None], [None, "a"], ["a", ""]],
)
def test_a_person_column_on_some_lines_only_is_refused(
    tmp_path: Path, people: list[str | None]
) -> None:
    # Prepare
    records: list[dict[str, Any]] = [
        {"query_id": f"q{i}", "query": f"question {i}", "doc_id": f"d{i}"} for i in range(2)
    ]
    for record, person in zip(records, people, strict=True):
        if person is not None:
            record["person_id"] = person
    node = _node(tmp_path / "node", records)
    # Execute / Assert
    with pytest.raises(DataFormatError, match="person_id"):
        load_node_data(node)
