"""Atomic whole-file replacement: the old or the new file, never a mix or a stray temp."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedding_core.atomic_file import atomic_write_bytes, atomic_write_json


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    # Prepare
    target = tmp_path / "file.bin"
    # Execute
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    # Assert
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path: Path) -> None:
    # Prepare
    target = tmp_path / "ledger.json"
    atomic_write_json(target, {"spent": 1.0})
    # Execute: NaN is refused before anything is written
    with pytest.raises(ValueError, match="JSON compliant"):
        atomic_write_json(target, {"spent": math.nan})
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    # Assert
    assert json.loads(target.read_text()) == {"spent": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json"]


def test_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "absent" / "file.bin", b"x")


@settings(max_examples=25, deadline=None)
@given(document=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8)))
def test_json_round_trips(tmp_path_factory: pytest.TempPathFactory, document: dict) -> None:
    target = tmp_path_factory.mktemp("rt") / "doc.json"
    atomic_write_json(target, document)
    assert json.loads(target.read_text(encoding="utf-8")) == document
