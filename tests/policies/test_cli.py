"""``fedembed policy`` validate / show / init through the real CLI app."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from fedembed.cli import app
from policies import default_policy_path, load_policy

runner = CliRunner()


def test_validate_good_file_prints_ok_and_sha256() -> None:
    path = default_policy_path()

    result = runner.invoke(app, ["policy", "validate", str(path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK ")
    assert hashlib.sha256(path.read_bytes()).hexdigest() in result.stdout


def test_validate_bad_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = default_policy_path().read_text(encoding="utf-8")
    bad.write_text(text.replace("max_mia_auc = 0.55", "max_mia_auc = 1.7"), encoding="utf-8")

    result = runner.invoke(app, ["policy", "validate", str(bad)])

    assert result.exit_code == 2
    assert "`audit.max_mia_auc`" in result.stderr
    assert "Traceback" not in result.output


def test_show_defaults_to_the_shipped_policy() -> None:
    result = runner.invoke(app, ["policy", "show"])

    assert result.exit_code == 0, result.output
    assert "consortium-default" in result.stdout
    assert "max_inversion_f1 = 0.1" in result.stdout
    assert "[audit]" in result.stdout


def test_init_writes_a_valid_copy_and_refuses_to_overwrite(tmp_path: Path) -> None:
    # Prepare
    out = tmp_path / "sub" / "policy.toml"
    # Execute
    first = runner.invoke(app, ["policy", "init", str(out)])
    out.write_text("# edited\n", encoding="utf-8")
    again = runner.invoke(app, ["policy", "init", str(out)])
    forced = runner.invoke(app, ["policy", "init", str(out), "--force"])
    # Assert
    assert first.exit_code == 0, first.output
    assert again.exit_code == 2
    assert "--force" in again.stderr
    assert forced.exit_code == 0
    assert out.read_bytes() == default_policy_path().read_bytes()
    assert load_policy(out).policy.policy.name == "consortium-default"
