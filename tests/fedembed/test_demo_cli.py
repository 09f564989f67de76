"""``fedembed demo``'s flags: what the default leaves out, and the old quick-audit flag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "1000"}  # help lines unwrapped
    return subprocess.run(
        [sys.executable, "-m", "fedembed", "demo", *args],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False,
    )  # fmt: skip


def test_help_states_what_the_flags_add_and_their_time() -> None:
    result = _demo("--help")

    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--full-sweep" in text
    assert "epsilon 1, 2, 4 and 8" in text
    assert "--full-audit" in text
    assert "30 minutes" in text
    assert "15 minutes" in text
    assert "--no-uses" in text  # the members' uses, on by default
    assert "--audit-quick" not in text  # accepted, not advertised


def test_old_quick_flag_with_the_full_audit_is_one_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = _demo("--audit-quick", "--full-audit", "--out", str(out), "--no-download")

    assert result.returncode == 2
    assert "--audit-quick" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
