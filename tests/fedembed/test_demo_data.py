"""The main job checks every dataset before any work and fails in one line without them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audit import AuditConfig
from fedembed.demo_data import (
    DEMO_DATASETS,
    QUICK_SEAT_TESTS,
    MissingDataError,
    ensure_demo_data,
    missing_files,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("FEDEMBED_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "fedembed", "demo", *args],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False,
    )  # fmt: skip


def test_demo_without_data_stops_at_once_with_one_line(tmp_path: Path) -> None:
    # Prepare
    empty, out = tmp_path / "data", tmp_path / "out"
    empty.mkdir()

    # Execute
    result = _demo("--data-dir", str(empty), "--out", str(out), "--no-download")

    # Assert: one line naming the folder, each dataset and the README; no work was done.
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: missing datasets")
    for name in ("stsb", "scifact", "banking77", "seat"):
        assert f"{empty / name}/" in line
    assert "corpus.jsonl" in line
    assert "README.md" in line
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_demo_without_a_data_folder_names_the_option(tmp_path: Path) -> None:
    result = _demo("--out", str(tmp_path / "out"), "--no-download")

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--data-dir" in result.stderr
    assert "FEDEMBED_DATA_DIR" in result.stderr
    assert not (tmp_path / "out").exists()


def test_one_missing_file_is_named_alone(shared_data_dir: Path, tmp_path: Path) -> None:
    # Prepare: a copy of the shared data without BANKING77's test split.
    data = tmp_path / "data"
    for dataset in DEMO_DATASETS:
        shutil.copytree(shared_data_dir / dataset.name, data / dataset.name)
    (data / "seat" / "tests").mkdir(parents=True)
    for test in QUICK_SEAT_TESTS:
        shutil.copyfile(
            shared_data_dir / "seat" / "tests" / f"{test}.jsonl",
            data / "seat" / "tests" / f"{test}.jsonl",
        )
    (data / "banking77" / "test.csv").unlink()

    # Execute
    missing = missing_files(data, QUICK_SEAT_TESTS)
    with pytest.raises(MissingDataError) as caught:
        ensure_demo_data(data, seat_tests=QUICK_SEAT_TESTS, download=False)

    # Assert
    assert missing == {"banking77": ["test.csv"]}
    assert f"{data / 'banking77'}/ needs test.csv" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert missing_files(data, ()) == {}  # without the audit, BANKING77 is not read
    assert "seat" not in missing_files(data, None)


def test_the_shared_data_is_complete(shared_data_dir: Path) -> None:
    assert ensure_demo_data(shared_data_dir, seat_tests=None, download=False) == []


def test_quick_seat_tests_are_the_quick_audits() -> None:
    assert AuditConfig.quick().bias_tests == QUICK_SEAT_TESTS
