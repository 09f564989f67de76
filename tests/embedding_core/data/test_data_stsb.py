from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from embedding_core.data import StsPair, load_stsb
from embedding_core.errors import DataFormatError, DatasetNotFoundError

SPLIT_SIZES = {"train": 5749, "dev": 1500, "test": 1379}
GOOD_ROW = "main-captions\tMSRvid\t2012test\t0001\t2.500\tA girl.\tA woman."


@pytest.mark.parametrize(("split", "size"), SPLIT_SIZES.items())
def test_jsonl_split_sizes(shared_data_dir: Path, split: str, size: int) -> None:
    # Execute
    pairs = load_stsb(shared_data_dir / "stsb", split=split)

    # Assert
    assert len(pairs) == size
    assert all(isinstance(p, StsPair) and 0.0 <= p.score <= 5.0 for p in pairs)


@pytest.mark.parametrize(("split", "size"), SPLIT_SIZES.items())
def test_csv_fallback_matches_jsonl(
    shared_data_dir: Path, tmp_path: Path, split: str, size: int
) -> None:
    # Prepare
    csv_only = tmp_path / "stsb"
    csv_only.mkdir()
    shutil.copyfile(shared_data_dir / "stsb" / f"sts-{split}.csv", csv_only / f"sts-{split}.csv")

    # Execute
    from_csv = load_stsb(csv_only, split=split)
    from_jsonl = load_stsb(shared_data_dir / "stsb", split=split)

    # Assert
    assert len(from_csv) == size
    assert from_csv == from_jsonl


def test_first_test_pair(shared_data_dir: Path) -> None:
    # Execute
    pairs = load_stsb(shared_data_dir / "stsb")

    # Assert
    assert pairs[0] == StsPair("A girl is styling her hair.", "A girl is brushing her hair.", 2.5)


def test_extra_csv_fields_are_ignored(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "sts-dev.csv").write_text(GOOD_ROW + "\textra\tfields\n", encoding="utf-8")

    # Execute
    pairs = load_stsb(tmp_path, split="dev")

    # Assert
    assert pairs == [StsPair("A girl.", "A woman.", 2.5)]


def test_file_path_is_accepted(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        json.dumps({"sentence1": "a", "sentence2": "b", "score": 5}) + "\n", encoding="utf-8"
    )

    # Execute
    pairs = load_stsb(path)

    # Assert
    assert pairs == [StsPair("a", "b", 5.0)]


def test_missing_split_names_looked_up_files(tmp_path: Path) -> None:
    # Execute
    with pytest.raises(DatasetNotFoundError) as caught:
        load_stsb(tmp_path, split="test")

    # Assert
    assert str(tmp_path / "stsb-test.jsonl") in str(caught.value)
    assert str(tmp_path / "sts-test.csv") in str(caught.value)


def _pair(**overrides: object) -> str:
    record: dict[str, object] = {"sentence1": "one", "sentence2": "two", "score": 3.0}
    record.update(overrides)
    return json.dumps({k: v for k, v in record.items() if v is not ...})


@pytest.mark.parametrize(
    ("bad_line", "needle"),
    [
        pytest.param("{broken", "invalid JSON", id="bad-json"),
        pytest.param(_pair(sentence2=...), "missing field(s) sentence2", id="missing-key"),
        pytest.param(_pair(sentence1=" "), "sentence1 is empty", id="empty-sentence"),
        pytest.param(_pair(score="high"), "not a number", id="score-string"),
        pytest.param(_pair(score=None), "not a number", id="score-null"),
        pytest.param(_pair(score=5.5), "outside [0, 5]", id="score-high"),
        pytest.param(_pair(score=-0.1), "outside [0, 5]", id="score-low"),
    ],
)
def test_malformed_jsonl(tmp_path: Path, bad_line: str, needle: str) -> None:
    # Prepare
    (tmp_path / "stsb-test.jsonl").write_text(_pair() + "\n\n" + bad_line + "\n", encoding="utf-8")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_stsb(tmp_path, split="test")

    # Assert
    message = str(caught.value)
    assert "stsb-test.jsonl:3:" in message
    assert needle in message
    assert "Fix:" in message


@pytest.mark.parametrize(
    ("bad_line", "needle"),
    [
        pytest.param("a\tb\tc\td\t2.0\tonly one", "6 tab-separated fields", id="few-fields"),
        pytest.param(GOOD_ROW.replace("2.500", "n/a"), "not a number", id="score"),
        pytest.param(GOOD_ROW.replace("2.500", "7"), "outside [0, 5]", id="range"),
        pytest.param(GOOD_ROW.replace("A woman.", ""), "sentence2 is empty", id="empty"),
    ],
)
def test_malformed_csv(tmp_path: Path, bad_line: str, needle: str) -> None:
    # Prepare
    (tmp_path / "sts-test.csv").write_text(GOOD_ROW + "\n" + bad_line + "\n", encoding="utf-8")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_stsb(tmp_path, split="test")

    # Assert
    message = str(caught.value)
    assert "sts-test.csv:2:" in message
    assert needle in message
    assert "Fix:" in message


def test_empty_file(tmp_path: Path) -> None:
    # Prepare
    (tmp_path / "stsb-test.jsonl").write_text("\n", encoding="utf-8")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        load_stsb(tmp_path)

    # Assert
    assert "no sentence pairs" in str(caught.value)
