"""The auditor's files are checked before any attack, in the words of the flags."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from audit.auditor_records import MIN_MEMBERSHIP_RECORDS, read_auditor_records
from embedding_core.errors import FedembedError
from fedembed.cli import main
from tests.audit.auditor_files import write_genre_csv, write_pool


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"attribute_label": "genre"}, "--attribute-label was given without --attribute-data"),
        ({"membership_records": Path("x")}, "without --membership-documents"),
    ],
)
def test_a_flag_without_its_partner_is_refused(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(FedembedError, match=words):
        read_auditor_records(**kwargs)


def test_a_missing_label_column_names_the_flag_that_fixes_it(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    path = write_genre_csv(shared_data_dir, tmp_path / "genres.csv")
    with pytest.raises(FedembedError) as error:
        read_auditor_records(
            attribute_data=path, attribute_label="region", attribute_text="sentence"
        )
    message = str(error.value)
    assert "'region'" in message
    assert "--attribute-data" in message
    assert "--attribute-label" in message
    assert "--label-column" not in message


@pytest.mark.parametrize(
    "labels", [["a", "b", "a", "b"], [str(i) for i in range(12)]], ids=["4 records", "no pair"]
)
def test_too_few_labelled_records_are_refused(tmp_path: Path, labels: list[str]) -> None:
    # Prepare
    path = tmp_path / "few.csv"
    path.write_text(
        "text,label\n" + "".join(f"text number {i},{v}\n" for i, v in enumerate(labels))
    )

    # Execute / Assert
    with pytest.raises(FedembedError, match=r"too few for the attribute attack") as error:
        read_auditor_records(attribute_data=path, attribute_label="label")
    assert "--attribute-label label" in str(error.value)


def test_a_doc_id_the_documents_lack_is_refused_with_its_line(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    interactions, documents = write_pool(shared_data_dir, tmp_path)
    lines = interactions.read_text().splitlines()
    lines[2] = json.dumps({"query_id": "q", "query": "a query", "doc_id": "nowhere"})
    interactions.write_text("\n".join(lines) + "\n")
    with pytest.raises(FedembedError, match=r"interactions.jsonl:3: doc_id 'nowhere' is not in"):
        read_auditor_records(membership_records=interactions, membership_documents=documents)


# -- the CLI: refusals before any attack, exit 2, no traceback -------------------------------


def _audit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: Path, *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["fedembed", "-q", "audit", "--out", str(out), *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0), capsys.readouterr().err


def test_the_cli_refuses_bad_auditor_material_before_any_attack(
    tmp_path: Path,
    shared_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Prepare
    genres = write_genre_csv(shared_data_dir, tmp_path / "genres.csv")
    interactions, documents = write_pool(shared_data_dir, tmp_path, MIN_MEMBERSHIP_RECORDS - 1)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"text,label\n\xff\xfe\x00broken,a\n")
    out = tmp_path / "report"
    cases = [
        (
            (
                "--attribute-data",
                str(genres),
                "--attribute-label",
                "region",
                "--attribute-text",
                "sentence",
            ),
            ("--attribute-data", "'region'", "--attribute-label"),
        ),
        (("--attribute-label", "genre"), ("--attribute-label", "--attribute-data")),
        (
            ("--attribute-data", str(binary), "--attribute-label", "label"),
            ("--attribute-data", "UTF-8"),
        ),
        (
            ("--attribute-data", str(tmp_path), "--attribute-label", "label"),
            ("--attribute-data", "is not a file"),
        ),
        (
            ("--membership-records", str(interactions), "--membership-documents", str(documents)),
            ("--membership-records", f">= {MIN_MEMBERSHIP_RECORDS} records"),
        ),
        (("--target-records", str(genres)), ("--target-records", "'text'", "--target-text")),
    ]

    for args, words in cases:
        # Execute
        code, err = _audit(monkeypatch, capsys, out, *args)

        # Assert
        assert code == 2, err
        assert err.startswith("error: ")
        assert "Traceback" not in err
        for word in words:
            assert word in err, (word, err)
        assert not out.exists()


def test_audit_help_shows_how_to_aim_each_attack(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["fedembed", "audit", "--help"])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main()
    text = capsys.readouterr().out
    for line in (
        "--attribute-data FILE --attribute-label COL",
        "--target-records FILE",
        "--membership-records FILE --membership-documents FILE",
        "fedembed audit bias",
    ):
        assert line in text
