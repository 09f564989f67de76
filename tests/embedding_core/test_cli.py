"""``fedembed eval`` / ``fedembed model``: backend choice, the cache switch, progress."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from embedding_core.cache import CACHE_FILE
from embedding_core.encoder import ENCODER_BACKENDS
from fedembed.cli import main

PAIRS = [
    ("A girl is styling her hair.", "A girl is brushing her hair.", 2.5),
    ("A man plays the guitar.", "A man is playing a guitar.", 4.8),
    ("Stocks fell sharply.", "A cat sleeps on the sofa.", 0.0),
    ("Two dogs run in a field.", "Dogs are running on the grass.", 3.8),
]


def _run(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["fedembed", *args])
    root = logging.getLogger()  # the CLI re-configures logging: undo it after the test
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def _stsb(folder: Path) -> Path:
    folder.mkdir()
    lines = [
        json.dumps({"id": str(i), "score": s, "sentence1": a, "sentence2": b})
        for i, (a, b, s) in enumerate(PAIRS)
    ]
    (folder / "stsb-test.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("command", [["eval", "sts"], ["eval", "beir", "--dataset", "x"]])
def test_an_unknown_backend_is_refused_in_cli_words(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run([*command, "--encoder-backend", "onnx-int4"], monkeypatch, capsys)

    assert code == 2
    assert "--encoder-backend" in err
    assert "onnx-int4" in err
    assert all(name in err for name in ENCODER_BACKENDS)
    assert "Traceback" not in out + err


def test_eval_sts_caches_per_text_and_no_cache_re_encodes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Prepare
    data = _stsb(tmp_path / "stsb")
    base = ["eval", "sts", "--data-dir", str(data), "--encoder-backend", "torch", "--json"]
    cached = [*base, "--cache-dir", str(tmp_path / "cache")]
    # Execute
    first = _run(cached, monkeypatch, capsys)
    second = _run(cached, monkeypatch, capsys)
    uncached = [*base, "--cache-dir", str(tmp_path / "none"), "--no-cache"]
    fresh = _run(uncached, monkeypatch, capsys)
    # Assert
    assert [first[0], second[0], fresh[0]] == [0, 0, 0]
    results = [json.loads(run[1].strip().splitlines()[-1]) for run in (first, second, fresh)]
    assert results[0] == results[1] == results[2]
    assert (tmp_path / "cache" / CACHE_FILE).is_file()
    assert not (tmp_path / "none").exists()
    counts = [
        [line.split(" texts=", 1)[1] for line in run[2].splitlines() if "cache: space=" in line]
        for run in (first, second, fresh)
    ]
    assert counts == [["8 hits=0 misses=8"], ["8 hits=8 misses=0"], []]
