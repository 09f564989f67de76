"""The main job's steps: a start line with the step's number, seconds in the timings."""

from __future__ import annotations

import logging

import pytest

from fedembed.demo_recipe import EPSILONS, QUICK_EPSILONS, Recipe
from fedembed.demo_steps import DemoSteps
from fedembed.federated_demo import plan_federation


def test_each_step_prints_its_number_and_records_its_seconds() -> None:
    # Prepare
    lines: list[str] = []
    steps = DemoSteps(echo=lines.append)
    steps.plan("a", "first")
    steps.plan("b", "second")

    # Execute
    with steps.run("a"):
        pass
    with steps.run("b", "second, relabelled"):
        pass
    steps.record("audit/x", "  a stage", 1.25)
    steps.record("audit/x", "  a stage", 1.0)

    # Assert
    assert lines == ["[1/2] first", "[2/2] second, relabelled"]
    timings = steps.timings()
    assert list(timings) == ["a", "b", "audit/x", "total"]
    assert timings["audit/x"] == pytest.approx(2.2, abs=0.1)
    assert timings["total"] >= timings["a"] + timings["b"]
    table = steps.table()
    assert table[0].startswith("step")
    assert table[-1].startswith("total (wall)")
    assert any(row.startswith("second, relabelled") for row in table)


def test_a_step_s_done_line_keeps_the_number_it_started_with(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: the audit's stages are recorded while its step runs
    steps = DemoSteps(echo=lambda _: None)
    steps.plan("index", "index")
    steps.plan("audit", "audit")
    caplog.set_level(logging.INFO, logger="fedembed.demo_steps")
    # Execute
    with steps.run("audit"):
        steps.record("audit/a", "  a stage", 1.0)
        steps.record("audit/b", "  another", 1.0)
    # Assert
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "step 2/2 started: audit"
    assert messages[1].startswith("step 2/2 done in ")


def test_a_step_that_fails_keeps_its_seconds() -> None:
    steps = DemoSteps(echo=lambda _: None)
    steps.plan("a", "first")

    with pytest.raises(RuntimeError), steps.run("a"):
        raise RuntimeError("boom")

    assert "a" in steps.timings()


def test_a_step_is_planned_once() -> None:
    steps = DemoSteps(echo=lambda _: None)
    steps.plan("a", "first")

    with pytest.raises(ValueError, match="twice"):
        steps.plan("a", "again")


@pytest.mark.parametrize(("epsilons", "federations"), [(QUICK_EPSILONS, 4), (EPSILONS, 10)])
def test_the_federation_plan_has_every_row_kind(
    epsilons: tuple[float, ...], federations: int
) -> None:
    # Execute
    steps = DemoSteps(echo=lambda _: None)
    plan_federation(steps, Recipe(), epsilons)

    # Assert: release, local DP, distributed DP, non-DP federated (Flower runs), plus the
    # set-up, the local-only rows and the centralised row.
    keys = [s.key for s in steps.steps]
    assert keys[0] == "federation_setup"
    assert keys[1] == "release"
    flower_runs = [k for k in keys if k == "release" or k.startswith(("dp-", "ddp-", "nodp"))]
    assert len(flower_runs) == federations
    assert {"local-only", "centralised"} <= set(keys)
