"""The audit announces each step, numbered, and its long loops advance a progress."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from audit.audit_steps import AuditSteps, counted
from audit.config import AuditConfig, AuditInputs
from audit.full_audit import audit_step_count
from audit.membership_bound import ReleaseBound
from audit.runner import AuditRunner
from embedding_core.progress import PROGRESS_ENV
from policies import load_default_policy
from tests.audit.tiny_data import write_tiny_data

# The fewest models the membership game plays with and one small bias test: the two
# stages run for real on the miniature data.
TINY = AuditConfig(
    bank_targets=None,
    claim_targets=None,
    optimisation_targets=0,
    vocabulary_min_zipf=None,
    word_map=False,
    mia_models=4,
    mia_targets=1,
    bias_tests=("weat7",),
    bias_mc_samples=200,
    score_probes=0,
)


def test_steps_are_numbered_out_of_the_total_and_details_stay_in_their_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare
    caplog.set_level(logging.INFO, logger="audit.audit_steps")
    lines: list[str] = []
    steps = AuditSteps(3, lines.append)

    # Execute
    steps.step("loading and embedding the audit data")
    steps("embedding STS-B sentences (public) (300 texts)")
    steps.step("membership inference: DP recipe, 4 shadows + 1 targets")

    # Assert: each line after the seconds since the start; the log has the same lines.
    assert [re.sub(r"^\[\s*\d+ s\] ", "", line) for line in lines] == [
        "audit [1/3] loading and embedding the audit data",
        "audit [1/3]   embedding STS-B sentences (public) (300 texts)",
        "audit [2/3] membership inference: DP recipe, 4 shadows + 1 targets",
    ]
    assert all(re.match(r"\[\s*\d+ s\] audit \[", line) for line in lines)
    assert [r.getMessage() for r in caplog.records] == [
        re.sub(r"^\[\s*\d+ s\] ", "", line) for line in lines
    ]


def test_an_audit_with_an_index_and_probes_has_nine_steps_and_without_seven() -> None:
    # Prepare
    policy = load_default_policy()
    full = AuditInputs(policy=policy, index=Path("index"))

    # Execute / Assert
    assert audit_step_count(full, AuditConfig()) == 9
    assert audit_step_count(AuditInputs(policy=policy), TINY) == 7


def test_counted_drives_a_progress_from_an_attacks_done_and_total(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    monkeypatch.setenv(PROGRESS_ENV, "log")
    caplog.set_level(logging.INFO, logger="embedding_core.progress")

    # Execute: attacks reporting (done, total) after each of their 3 targets; the first
    # total is known beforehand, the second only from the attack's first report.
    with counted("audit: optimisation inversion, raw", "targets", 3) as progress:
        before = [r.getMessage() for r in caplog.records]
        for done in range(1, 4):
            progress(done, 3)
    with counted("audit: word relevance map", "batches") as progress:
        for done in range(1, 4):
            progress(done, 3)

    # Assert
    messages = [r.getMessage() for r in caplog.records]
    assert before == ["audit: optimisation inversion, raw: started (3 targets)"]
    assert re.fullmatch(r"audit: optimisation inversion, raw: done, 3 targets in \d+s", messages[1])
    assert messages[2] == "audit: word relevance map: started (3 batches)"
    assert re.fullmatch(r"audit: word relevance map: done, 3 batches in \d+s", messages[3])
    assert len(messages) == 4


@pytest.mark.slow  # embeds the miniature data and trains 10 adapters: `make test-all`
def test_the_runner_announces_its_stages_and_counts_the_models_it_trains(
    tmp_path: Path,
    shared_data_dir: Path,
    embedding_cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: the miniature data, no adapter (the membership game trains its own).
    monkeypatch.setenv(PROGRESS_ENV, "log")
    caplog.set_level(logging.INFO)
    inputs = AuditInputs(
        policy=load_default_policy(),
        data_dir=write_tiny_data(shared_data_dir, tmp_path / "data"),
        cache=embedding_cache_dir,
    )
    lines: list[str] = []
    runner = AuditRunner(inputs, TINY, AuditSteps(4, lines.append))
    bound = ReleaseBound(None, None, None, None, "no bound: no adapter was given")

    # Execute
    runner.membership(8.0, 1e-5, bound)
    runner.bias()

    # Assert
    steps = [re.sub(r"^\[\s*\d+ s\] ", "", line) for line in lines]
    assert [s for s in steps if not s.startswith("audit [1/4]  ")] == [
        "audit [1/4] loading and embedding the audit data",
        "audit [2/4] membership inference: overfit control, 4 shadows + 1 targets",
        "audit [3/4] membership inference: DP recipe, 4 shadows + 1 targets",
        "audit [4/4] bias audit (WEAT/SEAT): 1 tests on the base model",
    ]
    assert "audit [1/4]   embedding BANKING77 test (targets) (30 texts)" in steps
    messages = [r.getMessage() for r in caplog.records]
    for name in ("control", "dp"):
        done = f"audit: membership inference, {name} models: done, 5 models in "
        assert any(m.startswith(done) for m in messages)
    assert any(m.startswith("audit: bias tests, base model: done, 1 tests") for m in messages)
