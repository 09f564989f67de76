"""``--encoder-backend`` wherever texts are encoded: an unknown backend is refused in CLI words.

A typo must not silently pick a default: a gateway, a node upload or an audit of another
backend than the collection's or the run's would work in another vector space. The
commands run through ``fedembed.cli.main`` in this process (the console script's path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from embedding_core.encoder import ENCODER_BACKENDS
from fedembed.cli import main


def _run(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["fedembed", "-q", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out + captured.err


def _member(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "documents.jsonl").write_text(json.dumps({"id": "d1", "text": "aspirin"}) + "\n")
    (folder / "interactions.jsonl").write_text(
        json.dumps({"query_id": "q1", "query": "aspirin", "doc_id": "d1"}) + "\n"
    )
    return folder


@pytest.mark.parametrize("command", ["node upload", "index serve", "audit"])
def test_an_unknown_encoder_backend_is_refused_naming_the_flag_and_the_choices(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Prepare: everything else valid, so only the backend can be refused
    monkeypatch.setenv("FEDEMBED_NODE_TOKEN", "t" * 40)
    monkeypatch.setenv("FEDEMBED_INDEX_ADMIN_TOKEN", "a" * 40)
    rest = {
        "node upload": ["--data-dir", str(_member(tmp_path / "member")), "--gateway",
                        "http://127.0.0.1:1", "--collection", "claims", "--node-id", "node-a"],
        "index serve": ["--data-dir", str(tmp_path / "index")],
        "audit": ["--out", str(tmp_path / "report")],
    }[command]  # fmt: skip
    # Execute
    code, output = _run(
        [*command.split(), *rest, "--encoder-backend", "onnx-int4"], monkeypatch, capsys
    )
    # Assert
    assert code == 2
    assert "--encoder-backend" in output
    assert "onnx-int4" in output
    assert all(backend in output for backend in ENCODER_BACKENDS)
    assert "Traceback" not in output
    assert not (tmp_path / "index").exists()
    assert not (tmp_path / "report").exists()


def test_the_gateway_backend_from_the_environment_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    monkeypatch.setenv("FEDEMBED_INDEX_ADMIN_TOKEN", "a" * 40)
    monkeypatch.setenv("FEDEMBED_INDEX_ENCODER_BACKEND", "int8")
    # Execute
    code, output = _run(["index", "serve", "--data-dir", str(tmp_path / "i")], monkeypatch, capsys)
    # Assert
    assert code == 2
    assert "FEDEMBED_INDEX_ENCODER_BACKEND" in output or "--encoder-backend" in output
    assert "int8" in output
