from __future__ import annotations

from pathlib import Path

import pytest

from embedding_core.data import DATA_DIR_ENV, resolve_data_dir, resolve_dataset_dir
from embedding_core.errors import DatasetNotFoundError


def test_option_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    option_dir = tmp_path / "option"
    env_dir = tmp_path / "env"
    option_dir.mkdir()
    env_dir.mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(env_dir))

    # Execute
    resolved = resolve_data_dir(option_dir)

    # Assert
    assert resolved == option_dir


def test_env_used_when_no_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))

    # Execute
    resolved = resolve_data_dir(None)

    # Assert
    assert resolved == tmp_path


def test_neither_option_nor_env_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)

    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        resolve_data_dir(None)

    # Assert
    message = str(caught.value)
    assert "--data-dir" in message
    assert DATA_DIR_ENV in message
    assert "Fix:" in message


def test_missing_dir_is_named(tmp_path: Path) -> None:
    # Prepare
    missing = tmp_path / "nope"

    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        resolve_data_dir(missing)

    # Assert
    assert str(missing) in str(caught.value)
    assert "does not exist" in str(caught.value)


def test_missing_env_dir_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    missing = tmp_path / "nope"
    monkeypatch.setenv(DATA_DIR_ENV, str(missing))

    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        resolve_data_dir(None)

    # Assert
    assert str(missing) in str(caught.value)
    assert DATA_DIR_ENV in str(caught.value)


def test_file_is_not_a_data_dir(tmp_path: Path) -> None:
    # Prepare
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")

    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        resolve_data_dir(a_file)

    # Assert
    assert "not a directory" in str(caught.value)


def test_dataset_dir_under_root(shared_data_dir: Path) -> None:
    # Execute
    folder = resolve_dataset_dir(shared_data_dir, "scifact", marker="corpus.jsonl")

    # Assert
    assert folder == shared_data_dir / "scifact"


def test_dataset_dir_given_directly(shared_data_dir: Path) -> None:
    # Execute
    folder = resolve_dataset_dir(shared_data_dir / "stsb", "stsb", marker="sts-test.csv")

    # Assert
    assert folder == shared_data_dir / "stsb"


def test_missing_beir_dataset_suggests_download(tmp_path: Path) -> None:
    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        resolve_dataset_dir(tmp_path, "nfcorpus", marker="corpus.jsonl")

    # Assert
    message = str(caught.value)
    assert str(tmp_path / "nfcorpus" / "corpus.jsonl") in message
    assert str(tmp_path / "corpus.jsonl") in message
    assert f"fedembed data download nfcorpus --data-dir {tmp_path}" in message


def test_missing_other_dataset_names_paths(tmp_path: Path) -> None:
    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        resolve_dataset_dir(tmp_path, "stsb", marker="sts-test.csv")

    # Assert
    message = str(caught.value)
    assert str(tmp_path / "stsb" / "sts-test.csv") in message
    assert "download" not in message
    assert "Fix:" in message
