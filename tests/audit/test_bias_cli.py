"""``fedembed audit bias`` and ``--bias-tests``: the bias audit aimed at the auditor's own tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from audit.audit_steps import AuditSteps
from audit.config import AuditConfig, AuditInputs
from audit.runner import AuditRunner
from embedding_core.errors import DatasetNotFoundError
from fedembed.cli import app
from policies import load_default_policy
from tests.audit.tiny_data import write_tiny_data

REPO_ROOT = Path(__file__).resolve().parents[2]

# Hand-written SEAT tests on Caliskan et al.'s flower/insect and pleasant/unpleasant words,
# which the bundled model separates: with insects as targ1 the association is reversed
# (insects lean to unpleasant), a strong negative effect the one-sided test cannot see.
FLOWERS = ["aster", "clover", "hyacinth", "marigold", "poppy", "azalea", "crocus", "iris"]
INSECTS = ["ant", "caterpillar", "flea", "locust", "spider", "bedbug", "centipede", "fly"]
PLEASANT = ["caress", "freedom", "health", "love", "peace", "cheer", "friend", "heaven"]
UNPLEASANT = ["abuse", "crash", "filth", "murder", "sickness", "accident", "death", "grief"]


def _seat(targ1: list[str], targ2: list[str], names: tuple[str, str]) -> dict[str, Any]:
    return {
        "targ1": {"category": names[0], "examples": targ1},
        "targ2": {"category": names[1], "examples": targ2},
        "attr1": {"category": "Pleasant", "examples": PLEASANT},
        "attr2": {"category": "Unpleasant", "examples": UNPLEASANT},
    }


def _write(folder: Path, name: str, content: dict[str, Any] | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


@pytest.fixture
def auditor_tests(tmp_path: Path) -> Path:
    """A folder without any default test: reversed 8-vs-8, tiny 2-vs-2, uneven 3-vs-5."""
    folder = tmp_path / "my-tests"
    _write(folder, "insects_pleasant", _seat(INSECTS, FLOWERS, ("Insects", "Flowers")))
    _write(folder, "tiny", _seat(INSECTS[:2], FLOWERS[:2], ("Insects", "Flowers")))
    _write(folder, "uneven", _seat(INSECTS[:3], FLOWERS[:5], ("Insects", "Flowers")))
    return folder


def _run(*args: str | Path) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)


def test_audit_bias_runs_the_auditors_folder_alone_and_ends_with_one_json_line(
    auditor_tests: Path, tmp_path: Path, embedding_cache_dir: Path
) -> None:
    # Prepare
    out = tmp_path / "out"

    # Execute
    result = _run(
        *("audit", "bias", "--tests", auditor_tests, "--json", "--out", out),
        *("--cache-dir", embedding_cache_dir),
    )

    # Assert
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    rows = {r["test"]: r for r in summary["tests"]}
    assert list(rows) == ["insects_pleasant", "tiny", "uneven"]
    assert (summary["family_size"], summary["alternative"]) == (3, "two-sided")
    assert set(summary["effect_size_conventions"]) == {
        "effect_size_sample",
        "effect_size_population",
    }
    reversed_row = rows["insects_pleasant"]
    assert reversed_row["effect_size_sample"] < -0.8  # reversed, and large
    assert reversed_row["effect_size_population"] < reversed_row["effect_size_sample"]
    assert reversed_row["significant"]
    assert reversed_row["p_holm"] <= 0.05
    assert reversed_row["p_method"] == "exact"
    assert rows["tiny"]["p_min"] == pytest.approx(2 / 6)
    assert rows["tiny"]["power"].startswith("underpowered")
    assert not rows["tiny"]["reachable"]
    assert rows["uneven"]["p_min"] == pytest.approx(1 / 56)  # 1/C(8, 3): unequal sizes
    assert "underpowered" in result.stdout.splitlines()[2]  # the table's tiny row
    written = json.loads((out / "bias.json").read_text(encoding="utf-8"))
    assert [r["test"] for r in written["tests"]] == list(rows)
    assert "| insects_pleasant |" in (out / "bias.md").read_text(encoding="utf-8")


def test_one_sided_option_misses_the_reversed_effect(
    auditor_tests: Path, embedding_cache_dir: Path
) -> None:
    # Execute
    result = _run(
        *("audit", "bias", "--tests", auditor_tests, "--json", "--alternative", "greater"),
        *("--cache-dir", embedding_cache_dir),
    )

    # Assert
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    row = next(r for r in summary["tests"] if r["test"] == "insects_pleasant")
    assert summary["alternative"] == "greater"
    assert row["p_value"] > 0.5
    assert not row["significant"]


def test_own_tests_beside_the_default_suite_share_one_family_and_clashing_names_are_told(
    auditor_tests: Path, tmp_path: Path, shared_data_dir: Path, embedding_cache_dir: Path
) -> None:
    # Prepare: a data folder whose suite holds weat1 and weat7 only (copies of the real
    # files, in tmp), and an auditor folder that also has a weat7.jsonl.
    suite = tmp_path / "data" / "seat" / "tests"
    suite.mkdir(parents=True)
    for name in ("weat1", "weat7"):
        shutil.copy(shared_data_dir / "seat" / "tests" / f"{name}.jsonl", suite)
    _write(auditor_tests, "weat7", _seat(INSECTS[:4], FLOWERS[:4], ("Insects", "Flowers")))

    # Execute
    result = _run(
        *("audit", "bias", "--tests", auditor_tests, "--with-default-tests", "--json"),
        *("--data-dir", tmp_path / "data", "--mc-samples", "2000"),
        *("--cache-dir", embedding_cache_dir),
    )

    # Assert
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    names = [r["test"] for r in summary["tests"]]
    assert names == [
        "weat1",
        "tests/weat7",
        "insects_pleasant",
        "tiny",
        "uneven",
        "my-tests/weat7",
    ]
    assert summary["renamed"] == {"weat7": ["tests/weat7", "my-tests/weat7"]}
    assert summary["family_size"] == 6
    weat1 = summary["tests"][0]
    assert (weat1["p_method"], weat1["n_permutations"]) == ("monte_carlo", 2000)
    assert weat1["p_min"] == pytest.approx(1 / 2001)
    assert "weat7.jsonl is in several folders" in result.stdout


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedembed", "audit", "bias", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )


def test_bad_test_folders_exit_2_with_the_flag_and_no_traceback(tmp_path: Path) -> None:
    # Prepare
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    _write(broken, "half", '{"targ1": {"category": "X", "examples": ["a"]},')
    cases = [  # (arguments, the error line, whether it says what a test file holds)
        (["--tests", str(tmp_path / "absent")], r"error: --tests .*absent: no such folder", True),
        (["--tests", str(empty)], r"error: --tests .*empty holds no \*\.jsonl file", True),
        (["--tests", str(broken)], r"error: .*half\.jsonl:\d+: not valid JSON", True),
        (
            ["--tests", str(tmp_path / "absent"), "--with-default-tests"],
            r"error: --tests .*absent: no such folder",
            True,
        ),
        (["--alpha", "2", "--tests", str(empty)], r"error: --alpha 2 is outside \(0, 1\)", False),
        (
            ["--with-default-tests", "--data-dir", str(empty)],
            r"error: the default bias tests .* were not found .*Fix: give --data-dir",
            False,
        ),
    ]

    for args, message, says_format in cases:
        # Execute
        result = _main(*args)

        # Assert
        assert result.returncode == 2, result.stderr
        assert re.search(message, result.stderr), result.stderr
        assert "Traceback" not in result.stderr
        assert ("targ1" in result.stderr) == says_format


def test_audit_help_shows_how_to_aim_the_bias_audit() -> None:
    # Execute
    group = _run("audit", "--help")
    part = _run("audit", "bias", "--help")

    # Assert
    assert group.exit_code == 0
    assert part.exit_code == 0
    assert "--bias-tests" in group.stdout
    assert "fedembed audit bias --tests DIR" in group.stdout
    for flag in ("--tests", "--with-default-tests", "--json", "--out", "--alternative"):
        assert flag in part.stdout


def test_loading_the_audit_group_loads_no_heavy_library() -> None:
    code = (
        "import sys, audit.cli\n"
        "print([m for m in ('torch', 'tenseal', 'flwr', 'onnxruntime') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_full_audit_refuses_a_bad_bias_tests_folder_before_any_attack(
    tmp_path: Path,
) -> None:
    # Execute
    result = _run("audit", "--out", tmp_path / "out", "--bias-tests", tmp_path / "no")

    # Assert
    assert isinstance(result.exception, DatasetNotFoundError)
    assert "--bias-tests" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_the_full_audits_bias_stage_runs_the_auditors_tests_with_the_quick_suite(
    auditor_tests: Path, tmp_path: Path, shared_data_dir: Path, embedding_cache_dir: Path
) -> None:
    # Prepare: the miniature data's suite holds weat1 and weat7; --quick asks for weat1,
    # weat2 and weat7: it runs those the suite holds, and every one of the auditor's.
    inputs = AuditInputs(
        policy=load_default_policy(),
        data_dir=write_tiny_data(shared_data_dir, tmp_path / "data"),
        cache=embedding_cache_dir,
        bias_tests=(auditor_tests,),
    )
    config = AuditConfig(
        bank_targets=None,
        claim_targets=None,
        optimisation_targets=0,
        word_map=False,
        bias_tests=AuditConfig.quick().bias_tests,
        bias_mc_samples=500,
        score_probes=0,
    )
    runner = AuditRunner(inputs, config, AuditSteps(0))

    # Execute
    rows, largest = runner.bias()

    # Assert
    by_name = {r["test"]: r for r in rows}
    assert list(by_name) == ["weat1", "weat7", "insects_pleasant", "tiny", "uneven"]
    assert by_name["insects_pleasant"]["effect_size"] < -0.8
    assert by_name["insects_pleasant"]["significant"]
    assert by_name["insects_pleasant"]["glove_reference"] is None
    assert by_name["weat1"]["glove_reference"] == 1.50
    assert by_name["tiny"]["power"].startswith("underpowered")
    significant = [abs(r["effect_size"]) for r in rows if r["significant"]]
    assert largest == pytest.approx(max(significant))  # |d|, whichever the direction
