"""Starting the ``fedembed`` command loads no heavy library: subcommands load on use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tenseal", "torch", "flwr", "sentence_transformers", "onnxruntime", "fastapi")


def _loaded_after(statement: str) -> list[str]:
    """The HEAVY modules in sys.modules after running ``statement`` in a fresh Python."""
    code = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=True,
    )
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import fedembed.cli") == []


def test_the_check_sees_a_heavy_import() -> None:
    # Assert: the same check reports TenSEAL when a module that needs it is imported.
    assert "tenseal" in _loaded_after("import fedembed.cli, crypto.ckks_context")


def test_a_subcommand_is_loaded_when_it_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fedembed", "node", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "start" in result.stdout
