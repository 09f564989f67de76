"""``/v1/runs`` against a real TLS SuperLink: start, follow, stop, logs (no SuperNode).

The run is submitted with ``flwr run`` and its ServerApp starts on the SuperLink; with no
SuperNode connected it waits for nodes, so it can be followed and stopped. About a minute
on a 2-core machine (building and installing the Flower App takes most of it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordinator.admin.runs import RUN_FILE
from coordinator.admin.settings import AdminSettings
from coordinator.admin.tokens import AdminRole
from deployment.flower_processes import start_superlink
from kits.loader import load_coordinator_kit
from kits.provisioning import provision

pytestmark = pytest.mark.slow


@pytest.fixture
def admin_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AdminSettings]:
    """A provisioned consortium home and its running SuperLink (overrides the plain home)."""
    for variable in ("FEDEMBED_ADMIN_TRAIL_KEY", "FEDEMBED_ADMIN_METRICS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    home = tmp_path / "home"
    provision(home / "kits", node_ids=["alice", "bob"])
    link = start_superlink(
        coordinator_kit=load_coordinator_kit(home / "kits" / "coordinator"),
        state_dir=tmp_path / "superlink",
    )
    try:
        yield AdminSettings(home=home, port=0, superlink_control=link.extra["address"])
    finally:
        link.stop()


def _wait_for(client: TestClient, name: str, headers: dict[str, str], state: str) -> Any:
    deadline = time.monotonic() + 120
    view: Any = None
    while time.monotonic() < deadline:
        view = client.get(f"/v1/runs/{name}", headers=headers).json()
        if view["state"] == state:
            return view
        time.sleep(1)
    raise AssertionError(f"run {name} never reached {state}: {view}")


def test_a_run_is_started_followed_stopped_and_its_log_read(
    admin_client: TestClient, admin_auth: dict[AdminRole, dict[str, str]], tmp_path: Path
) -> None:
    operator, auditor = admin_auth[AdminRole.OPERATOR], admin_auth[AdminRole.AUDITOR]
    run_config = {
        "num-server-rounds": 1,
        "eval-dataset": "none",
        "min-nodes": 1,
        "aggregation": "plaintext",
        "allow-insecure-plaintext": True,
    }

    # Execute: start (202), follow until the ServerApp runs, stop, read the log.
    started = admin_client.post(
        "/v1/runs", json={"name": "first", "run_config": run_config}, headers=operator
    )
    assert started.status_code == 202, started.text
    running = _wait_for(admin_client, "first", auditor, "running")
    stopped = admin_client.post("/v1/runs/first/stop", headers=operator)
    log = admin_client.get("/v1/runs/first/logs", headers=auditor)
    again = admin_client.post(
        "/v1/runs", json={"name": "first", "run_config": run_config}, headers=operator
    )
    listed = admin_client.get("/v1/runs", headers=auditor).json()["runs"]

    # Assert
    view = started.json()
    assert view["flower_run_id"] > 0
    assert view["run_config"]["run-tag"] == "first"
    assert view["progress"] == {
        "rounds_total": 1,
        "rounds_done": 0,
        "initial_metrics": {},
        "rounds": [],
    }
    assert running["flower_status"] == "running"
    assert stopped.status_code == 200
    assert stopped.json()["state"] == "stopped"
    assert log.status_code == 200
    assert "run-tag=first" in log.text  # the ServerApp's own log line
    assert "Authorization" not in log.text
    assert again.status_code == 409  # the name and its folder are never reused
    assert [(r["name"], r["state"]) for r in listed] == [("first", "stopped")]
    assert (tmp_path / "home" / "runs" / "first" / RUN_FILE).is_file()
