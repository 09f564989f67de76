"""Members' epsilon per run and in all, by name, against the policy, over run folders whose
ledgers the coordinator's FederationLedger wrote; and the planner endpoint, which must say
what `fedembed policy plan` says."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from flwr.app import Array, ArrayRecord, Error, Message, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from coordinator.admin.budgets import Budgets
from coordinator.admin.errors import AdminInvalidError
from coordinator.admin.home import ConsortiumHome
from coordinator.admin.settings import AdminSettings
from coordinator.admin.tokens import AdminRole
from coordinator.federation_ledger import FederationLedger, NodeNames
from coordinator.publication import LEDGER_FILE
from policies import load_default_policy
from privacy.analysis import epsilon_for_mu
from tests.coordinator.grid import start_round

GLOBAL = ArrayRecord({"w": Array(np.zeros(4, dtype=np.float32))})
DELTA = load_default_policy().policy.privacy.target_delta  # 1e-5; the budget is 8
NOISE = 20.0  # charged per round: one full-batch step, so a round is 1/NOISE-GDP


@pytest.fixture(autouse=True)
def as_a_server_app(server_app_process: None) -> None:
    """The run folders' ledgers are written as the ServerApp writes them (a task identity)."""


def _metadata(node: int) -> Metadata:
    return Metadata(
        run_id=1, message_id=f"m{node}", src_node_id=node, dst_node_id=0,
        reply_to_message_id="x", group_id="1", created_at=0.0, ttl=60.0, message_type="train",
    )  # fmt: skip


def _reply(node: int, epsilon: float | None) -> Message:
    """Node ``node``'s reply: its ledger's total epsilon and the charge, or a refusal."""
    if epsilon is None:
        return Message(Error(code=2, reason="privacy budget exhausted"), metadata=_metadata(node))
    metrics = {"unit-weight": 1.0, "epsilon": epsilon, "charged-noise-multiplier": NOISE}
    metrics |= {"sample-rate": 1.0, "steps": 1}
    arrays = ArrayRecord({"w": Array(np.full(4, 0.1, dtype=np.float32))})
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord(metrics)})
    return Message(content, metadata=_metadata(node))


def _run(
    home: ConsortiumHome, run: str, rounds: list[dict[int, float | None]], names: dict[int, str]
) -> None:
    """A run folder whose federation_ledger.json the coordinator's ledger wrote."""
    naming = NodeNames()
    naming.update(names)
    inner = FedAvg(min_train_nodes=1, min_available_nodes=1, weighted_by_key="unit-weight")
    ledger = FederationLedger(inner, path=home.runs / run / LEDGER_FILE, names=naming)
    for number, replies in enumerate(rounds, start=1):
        start_round(ledger, number, GLOBAL, list(replies))
        ledger.aggregate_train(number, [_reply(n, e) for n, e in replies.items()])


@pytest.fixture
def runs(admin_home: ConsortiumHome) -> ConsortiumHome:
    named = {1: "clinic-a", 2: "clinic-b"}
    _run(admin_home, "run-1", [{1: 1.0, 2: 5.0}, {1: 2.0, 2: 7.0}], named)
    _run(admin_home, "run-2", [{1: 3.0, 2: None}], named)
    _run(admin_home, "run-0", [{3: 9.0}], {})  # a ledger that keys nodes by Flower's number
    return admin_home


def _rounds(n: int) -> float:
    return epsilon_for_mu(mu=math.sqrt(n) / NOISE, delta=DELTA)


def test_each_member_by_name_per_run_and_in_all_against_the_policy(
    runs: ConsortiumHome, admin_settings: AdminSettings
) -> None:
    # Execute
    members = {m.member: m.to_dict() for m in Budgets(admin_settings).members()}
    # Assert
    assert sorted(members) == ["3", "clinic-a", "clinic-b"]
    a, b, old = members["clinic-a"], members["clinic-b"], members["3"]
    assert (a["epsilon"], a["status"], a["named"]) == (3.0, "ok", True)
    assert {r["run"]: r["epsilon_total"] for r in a["runs"]} == {"run-1": 2.0, "run-2": 3.0}
    by_run = {r["run"]: r["run_epsilon"] for r in a["runs"]}
    assert by_run == {"run-1": pytest.approx(_rounds(2)), "run-2": pytest.approx(_rounds(1))}
    assert (b["epsilon"], b["status"], b["remaining"]) == (7.0, "near", 1.0)
    assert [(r["run"], r["rounds"], r["refusals"]) for r in b["runs"]] == [
        ("run-1", 2, 0),
        ("run-2", 0, 1),
    ]
    assert (old["epsilon"], old["status"], old["named"]) == (9.0, "over", False)


def test_the_budget_routes_answer_every_role_and_404_an_unknown_member(
    runs: ConsortiumHome, admin_client: TestClient, admin_auth: dict[AdminRole, dict[str, str]]
) -> None:
    # Execute
    listing = admin_client.get("/v1/budgets", headers=admin_auth[AdminRole.AUDITOR])
    one = admin_client.get("/v1/budgets/clinic-b", headers=admin_auth[AdminRole.OPERATOR])
    unknown = admin_client.get("/v1/budgets/nobody", headers=admin_auth[AdminRole.ADMIN])
    anonymous = admin_client.get("/v1/budgets")
    # Assert
    assert listing.status_code == 200
    assert listing.json()["max_epsilon_per_node"] == 8.0
    assert [m["member"] for m in listing.json()["members"]] == ["3", "clinic-a", "clinic-b"]
    assert (one.status_code, one.json()["status"]) == (200, "near")
    assert unknown.status_code == 404
    assert "nobody" in unknown.json()["error"]["problem"]
    assert anonymous.status_code == 401


def _cli_plan(policy: Path | None, shares: int) -> dict[str, object]:
    args = [sys.executable, "-m", "fedembed", "policy", "plan", "--noise-shares", str(shares)]
    result = subprocess.run(
        [*args, *([str(policy)] if policy else [])], capture_output=True, text=True, check=True
    )
    plan: dict[str, object] = json.loads(result.stdout.splitlines()[0])
    return plan


def test_the_plan_endpoint_says_what_fedembed_policy_plan_says(
    admin_client: TestClient, admin_auth: dict[AdminRole, dict[str, str]], tmp_path: Path
) -> None:
    # Prepare: the default policy, and one with a smaller budget and a looser MIA limit
    custom = tmp_path / "policy.toml"
    text = load_default_policy().path.read_text()
    custom.write_text(
        text.replace("max_epsilon_per_node = 8.0", "max_epsilon_per_node = 2.5").replace(
            "max_mia_auc = 0.55", "max_mia_auc = 0.58"
        )
    )
    reader = admin_auth[AdminRole.AUDITOR]
    # Execute
    default = admin_client.post("/v1/budgets/plan", json={"noise_shares": 3}, headers=reader)
    changed = admin_client.post(
        "/v1/budgets/plan",
        json={"noise_shares": 2, "max_epsilon_per_node": 2.5, "max_mia_auc": 0.58},
        headers=reader,
    )
    # Assert: the same numbers as the CLI's (the policy file names differ)
    assert default.status_code == 200
    assert changed.status_code == 200
    for answer, cli in ((default, _cli_plan(None, 3)), (changed, _cli_plan(custom, 2))):
        mine, theirs = answer.json(), cli
        del mine["policy"], theirs["policy"]
        assert mine == theirs


@pytest.mark.parametrize(
    "body",
    [
        {"max_epsilon_per_node": -1},
        {"max_epsilon_per_node": 0},
        {"max_epsilon_per_node": 1e308},
        {"target_delta": 1.0},
        {"max_mia_auc": 0.5},
        {"noise_shares": -1},
        {"noise_shares": 1.5},
        {"noise_shares": True},
        {"max_epsilon_per_node": "nan"},
        {"unknown": 1},
    ],
)
def test_the_plan_endpoint_refuses_bad_numbers_with_422(
    admin_client: TestClient, admin_auth: dict[AdminRole, dict[str, str]], body: dict[str, object]
) -> None:
    answer = admin_client.post(
        "/v1/budgets/plan", json=body, headers=admin_auth[AdminRole.OPERATOR]
    )
    assert answer.status_code == 422
    assert set(answer.json()["error"]) == {"problem", "expected", "fix"}


def test_the_plan_endpoint_refuses_nan_sent_as_a_json_number(
    admin_client: TestClient, admin_auth: dict[AdminRole, dict[str, str]]
) -> None:
    answer = admin_client.post(
        "/v1/budgets/plan",
        content=b'{"max_epsilon_per_node": NaN}',
        headers={**admin_auth[AdminRole.OPERATOR], "Content-Type": "application/json"},
    )
    assert answer.status_code == 422


@pytest.mark.parametrize(
    "numbers",
    [
        {"max_epsilon_per_node": math.nan},
        {"max_epsilon_per_node": math.inf},
        {"target_delta": 0.0},
        {"max_mia_auc": 1.5},
        {"noise_shares": -2},
    ],
)
def test_plan_as_a_function_refuses_bad_numbers(
    admin_settings: AdminSettings, numbers: dict[str, float]
) -> None:
    with pytest.raises(AdminInvalidError) as refused:
        Budgets(admin_settings).plan(**numbers)  # type: ignore[arg-type]
    assert next(iter(numbers)) in refused.value.expected
