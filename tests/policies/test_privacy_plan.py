"""``plan_privacy``: the per-node epsilon a policy's budget and MIA limit allow."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fedembed.cli import app
from policies import Policy, PolicyError, load_policy, plan_privacy
from policies.privacy_plan import LIMIT_EPSILON, LIMIT_MIA_AUC
from privacy import DEFAULT_UNIT
from privacy.analysis import auc_bound, mu_for
from tests.policies.conftest import WritePolicy

runner = CliRunner()


def test_default_policy_is_limited_by_its_mia_threshold(default_policy: Policy) -> None:
    plan = plan_privacy(default_policy)

    assert plan.limited_by == LIMIT_MIA_AUC
    assert plan.epsilon == pytest.approx(0.6376, abs=1e-4)
    assert plan.epsilon < default_policy.privacy.max_epsilon_per_node
    assert plan.auc_bound == pytest.approx(default_policy.audit.max_mia_auc, abs=1e-9)
    assert plan.delta == default_policy.privacy.target_delta


def test_a_loose_mia_limit_leaves_the_budget(write_policy: WritePolicy) -> None:
    path = write_policy(
        ("max_mia_auc = 0.55", "max_mia_auc = 0.95"),
        ("min_mia_control_auc = 0.6", "min_mia_control_auc = 0.97"),
    )
    policy = load_policy(path).policy

    plan = plan_privacy(policy)

    assert plan.limited_by == LIMIT_EPSILON
    assert plan.epsilon == policy.privacy.max_epsilon_per_node
    assert plan.auc_bound == pytest.approx(auc_bound(mu=mu_for(epsilon=8.0, delta=1e-5)))
    assert plan.auc_bound < 0.95


def test_an_mia_limit_of_guessing_cannot_be_planned(write_policy: WritePolicy) -> None:
    policy = load_policy(write_policy(("max_mia_auc = 0.55", "max_mia_auc = 0.5"))).policy

    with pytest.raises(PolicyError, match=r"max_mia_auc = 0\.5 cannot be guaranteed"):
        plan_privacy(policy)


def test_cli_prints_the_plan_as_json() -> None:
    result = runner.invoke(app, ["policy", "plan"])

    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["limited_by"] == LIMIT_MIA_AUC
    assert plan["auc_bound"] <= 0.55 + 1e-9
    assert "full-batch" in plan["bound_holds_for"]


def test_cli_names_an_unplannable_policy(write_policy: WritePolicy) -> None:
    path = write_policy(("max_mia_auc = 0.55", "max_mia_auc = 0.4"))

    result = runner.invoke(app, ["policy", "plan", str(path)])

    assert result.exit_code == 2
    assert "audit.max_mia_auc" in result.stderr
    assert "Traceback" not in result.output


def test_the_plan_holds_for_the_strictest_observer_and_reports_each(
    default_policy: Policy,
) -> None:
    # Execute: three noise shares, every observer named (the default).
    plan = plan_privacy(default_policy, noise_shares=3)

    # Assert: the target is the fellow member's epsilon and its bound meets the limit; the
    # coordinator faces sqrt(3/2) times the noise, so a smaller mu.
    assert plan.observer == "fellow-member"
    assert [b.observer for b in plan.observers] == [
        "outsider",
        "partner",
        "coordinator",
        "fellow-member",
    ]
    member = plan.bound_for("fellow-member")
    coordinator = plan.bound_for("coordinator")
    assert member.epsilon == pytest.approx(plan.epsilon)
    assert member.auc_bound == pytest.approx(0.55, abs=1e-9)
    assert coordinator.mu == pytest.approx(member.mu * (2 / 3) ** 0.5)
    assert coordinator.auc_bound < member.auc_bound
    assert plan.epsilon == pytest.approx(plan_privacy(default_policy).epsilon)


def test_a_policy_that_names_only_the_coordinator_plans_for_it(
    write_policy: WritePolicy,
) -> None:
    # Prepare: fellow members are not named; three noise shares.
    path = write_policy(
        (
            'observers = ["outsider", "partner", "coordinator", "fellow-member"]\n',
            'observers = ["coordinator"]\n',
        )
    )
    policy = load_policy(path).policy

    # Execute
    plan = plan_privacy(policy, noise_shares=3)

    # Assert: the coordinator's bound meets the limit; the target (the fellow member's
    # view, what ledgers charge) is larger, and the fellow member's bound is not reported.
    assert plan.observer == "coordinator"
    assert plan.bound_for("coordinator").auc_bound == pytest.approx(0.55, abs=1e-9)
    assert plan.epsilon > plan_privacy(policy).epsilon
    assert plan.auc_bound > 0.55
    with pytest.raises(KeyError):
        plan.bound_for("fellow-member")


def test_cli_prints_each_observers_epsilon_and_auc_bound() -> None:
    result = runner.invoke(app, ["policy", "plan", "--noise-shares", "3"])

    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["observer"] == "fellow-member"
    assert plan["epsilon_holds_for"] == "fellow-member"
    assert plan["observers"]["fellow-member"]["auc_bound"] <= 0.55 + 1e-9
    assert plan["observers"]["coordinator"]["epsilon"] < plan["epsilon"]
    assert "# fellow-member: epsilon" in result.stderr
    assert "MIA AUC bound 0.5500" in result.stderr


def test_cli_refuses_negative_noise_shares() -> None:
    result = runner.invoke(app, ["policy", "plan", "--noise-shares", "-1"])

    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_the_plan_names_the_unit_the_ledgers_charge(default_policy: Policy) -> None:
    # Execute
    plan = plan_privacy(default_policy).to_dict()

    # Assert: planning keeps its own copy of the name, so it must match the ledger's.
    assert plan["privacy_unit"] == DEFAULT_UNIT
