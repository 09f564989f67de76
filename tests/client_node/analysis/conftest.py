"""Fixtures of the ``fedembed node analyse`` tests (helpers in ``records.py``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from fedembed.cli import main
from tests.client_node.analysis.records import Runner


@pytest.fixture
def analyse(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, embedding_cache_dir: Path
) -> Runner:
    """Run ``fedembed node analyse COMMAND ARGS`` as ``main`` does: (exit code, out, err).

    Every run shares the session's embedding cache, so each text is encoded once. The
    log handler ``main`` installs (on this test's captured stderr) is removed afterwards,
    so later log lines never reach a closed stream.
    """
    root = logging.getLogger()

    def invoke(command: str, *args: str) -> tuple[int, str, str]:
        argv = ["fedembed", "node", "analyse", command, "--cache-dir", str(embedding_cache_dir)]
        monkeypatch.setattr(sys, "argv", [*argv, *args])
        handlers, level = list(root.handlers), root.level
        try:
            with pytest.raises(SystemExit) as exited:
                main()
        finally:
            for handler in [h for h in root.handlers if h not in handlers]:
                root.removeHandler(handler)
            for handler in [h for h in handlers if h not in root.handlers]:
                root.addHandler(handler)
            root.setLevel(level)
        captured = capsys.readouterr()
        return int(exited.value.code or 0), captured.out, captured.err

    return invoke
