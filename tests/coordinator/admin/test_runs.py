"""``/v1/runs`` and its RunManager: validation, own folders, progress from the run folder.

Without a SuperLink: a run config is validated before anything is submitted, so a
mistake is a 422 naming the JSON field and leaves no folder; a run the SuperLink cannot
take (nothing listens) still keeps the folder it was given, and no later run reuses it.
A run's progress is read from what the ServerApp writes into its folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordinator.admin.errors import AdminConflictError, AdminUnavailableError
from coordinator.admin.home import ConsortiumHome
from coordinator.admin.run_request import RunRequest, validated_run_config
from coordinator.admin.runs import RUN_FILE, RunManager
from coordinator.admin.settings import AdminSettings
from coordinator.admin.tokens import AdminRole
from coordinator.admin.trail_records import TRAIL_FILE
from coordinator.run_folder import CENTRAL_METRICS_FILE, HISTORY_FILE, LEDGER_FILE
from deployment.flower_processes import free_port
from kits.layout import CA_CERT, CKKS_PUBLIC

Auth = dict[AdminRole, dict[str, str]]


@pytest.fixture
def kit(admin_home: ConsortiumHome) -> Path:
    """A coordinator kit folder whose SuperLink does not run (nothing listens)."""
    admin_home.coordinator_kit.mkdir(parents=True)
    (admin_home.coordinator_kit / CA_CERT).write_text("not used: nothing listens\n")
    (admin_home.coordinator_kit / CKKS_PUBLIC).write_bytes(b"read by the ServerApp, not here")
    return admin_home.coordinator_kit


@pytest.fixture
def offline_settings(admin_settings: AdminSettings, kit: Path) -> AdminSettings:
    """The settings with a Control API address where nothing listens."""
    return admin_settings.model_copy(update={"superlink_control": f"127.0.0.1:{free_port()}"})


def _error(answer: Any) -> dict[str, str]:
    body: dict[str, dict[str, str]] = answer.json()
    return body["error"]


@pytest.mark.parametrize(
    ("run_config", "field"),
    [
        ({"num-server-rounds": 0}, "num-server-rounds"),
        ({"eval-dataset": "../scifact"}, "eval-dataset"),
        ({"eval-dataset": "no-such-dataset"}, "eval-dataset"),
        ({"target-epsilon": "lots"}, "target-epsilon"),
        ({"round-timout": 5.0}, "round-timout"),
        ({"out-dir": "/tmp/elsewhere"}, "out-dir"),
        ({"run-tag": "mine"}, "run-tag"),
        ({"task": "clustering"}, "task"),
        ({"task": "kmeans", "kmeans-k": 1, "eval-dataset": "none"}, "kmeans-k"),
        ({"task": "classifier", "classifier-labels": "", "eval-dataset": "none"}, "classifier-"),
    ],
)
def test_an_invalid_run_config_is_a_422_naming_the_field_and_leaves_no_folder(
    admin_client: TestClient,
    admin_auth: Auth,
    admin_home: ConsortiumHome,
    kit: Path,
    run_config: dict[str, Any],
    field: str,
) -> None:
    answer = admin_client.post(
        "/v1/runs", json={"run_config": run_config}, headers=admin_auth[AdminRole.OPERATOR]
    )

    assert answer.status_code == 422
    error = _error(answer)
    assert "run_config" in error["problem"]
    assert field in error["problem"]
    assert error["fix"]
    assert not admin_home.runs.exists() or not any(admin_home.runs.iterdir())


def test_starting_and_stopping_runs_needs_the_operator_role(
    admin_client: TestClient, admin_auth: Auth, kit: Path
) -> None:
    for path in ("/v1/runs", "/v1/runs/some-run/stop"):
        answer = admin_client.post(path, json={}, headers=admin_auth[AdminRole.AUDITOR])
        assert answer.status_code == 403
    assert admin_client.get("/v1/runs", headers=admin_auth[AdminRole.AUDITOR]).status_code == 200
    assert admin_client.post("/v1/runs", json={}).status_code == 401


def test_a_request_with_unknown_fields_is_refused(
    admin_client: TestClient, admin_auth: Auth, kit: Path
) -> None:
    answer = admin_client.post(
        "/v1/runs", json={"rounds": 3}, headers=admin_auth[AdminRole.OPERATOR]
    )

    assert answer.status_code == 422
    assert "error" in answer.json()


def test_nothing_is_claimed_when_the_superlink_does_not_answer(
    admin_client: TestClient, admin_auth: Auth, offline_settings: AdminSettings
) -> None:
    runs = RunManager(offline_settings)

    with pytest.raises(AdminUnavailableError, match="does not answer") as caught:
        runs.start(RunRequest(name="trial", run_config={"eval-dataset": "none"}))

    assert caught.value.status == 503
    assert "no run was created" in caught.value.fix
    assert not (offline_settings.consortium.runs / "trial").exists()


def test_a_ckks_run_before_the_key_ceremony_is_a_conflict_that_says_what_to_do(
    admin_client: TestClient, admin_auth: Auth, admin_home: ConsortiumHome, kit: Path
) -> None:
    (kit / CKKS_PUBLIC).unlink()

    answer = admin_client.post(
        "/v1/runs", json={"run_config": {}}, headers=admin_auth[AdminRole.OPERATOR]
    )

    assert answer.status_code == 409
    assert "ckks-install-public" in _error(answer)["fix"]
    assert not admin_home.runs.exists() or not any(admin_home.runs.iterdir())


def _existing_run(home: ConsortiumHome, name: str, **record: Any) -> Path:
    """A run folder as a start through the admin API left it."""
    folder = home.runs / name
    folder.mkdir(parents=True)
    saved = {
        "name": name,
        "run_config": {"num-server-rounds": 2, "out-dir": str(folder), "run-tag": name},
        "rounds_total": 2,
        "flower_run_id": None,
        "created": "2026-01-01T00:00:00+00:00",
        "submitted": None,
        "finished": "2026-01-01T00:00:01+00:00",
        "state": "failed",
        **record,
    }
    (folder / RUN_FILE).write_text(json.dumps(saved))
    return folder


def test_a_run_name_and_its_folder_are_never_reused(
    offline_settings: AdminSettings, admin_home: ConsortiumHome
) -> None:
    # Prepare: an earlier run's folder, with what it published.
    folder = _existing_run(admin_home, "trial")
    (folder / HISTORY_FILE).write_text('{"status": "succeeded"}')
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    runs = RunManager(offline_settings)

    # Execute
    with pytest.raises(AdminConflictError, match="exists already") as caught:
        runs.start(RunRequest(name="trial", run_config={"eval-dataset": "none"}))

    # Assert: refused before the SuperLink is even asked; the folder is as it was.
    assert caught.value.status == 409
    assert "never reused" in caught.value.fix
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def _write_progress(folder: Path) -> None:
    """What the ServerApp writes into a run folder after round 1 of 2."""
    ledger = {
        "rounds": [
            {
                "round": 1,
                "released": True,
                "nodes": {
                    "alice": {"answered": True, "epsilon": 1.0, "flower_node_id": 7},
                    "bob": {"error": "bob: budget exhausted", "flower_node_id": 8},
                },
            }
        ]
    }
    (folder / LEDGER_FILE).write_text(json.dumps(ledger))
    central = {"dataset": "scifact", "rounds": {"0": {"ndcg@10": 0.6}, "1": {"ndcg@10": 0.62}}}
    (folder / CENTRAL_METRICS_FILE).write_text(json.dumps(central))


def test_status_reports_rounds_done_refusals_and_central_metrics(
    offline_settings: AdminSettings,
    admin_app: Any,
    admin_auth: Auth,
) -> None:
    # Prepare: a run that ended, with its progress as the ServerApp wrote it.
    runs = RunManager(offline_settings)
    folder = _existing_run(offline_settings.consortium, "r1")
    _write_progress(folder)
    (folder / HISTORY_FILE).write_text(
        json.dumps({"status": "failed", "reason": "no round of 2 was aggregated"})
    )
    admin_app.state.runs = runs

    # Execute
    with TestClient(admin_app) as client:
        answer = client.get("/v1/runs/r1", headers=admin_auth[AdminRole.AUDITOR])
        listed = client.get("/v1/runs", headers=admin_auth[AdminRole.AUDITOR])
        missing = client.get("/v1/runs/r2", headers=admin_auth[AdminRole.AUDITOR])

    # Assert
    assert answer.status_code == 200
    view = answer.json()
    assert view["state"] == "failed"
    assert view["reason"] == "no round of 2 was aggregated"
    progress = view["progress"]
    assert (progress["rounds_done"], progress["rounds_total"]) == (1, 2)
    assert progress["initial_metrics"] == {"ndcg@10": 0.6}
    (first,) = progress["rounds"]
    assert first["answered"] == ["alice"]
    assert first["refusals"] == [{"node": "bob", "reason": "bob: budget exhausted"}]
    assert first["metrics"] == {"ndcg@10": 0.62}
    assert [r["name"] for r in listed.json()["runs"]] == ["r1"]
    assert missing.status_code == 404
    assert "GET /v1/runs" in _error(missing)["fix"]


def test_stopping_a_finished_run_is_a_conflict_and_is_audited(
    offline_settings: AdminSettings, admin_app: Any, admin_auth: Auth
) -> None:
    runs = RunManager(offline_settings)
    _existing_run(offline_settings.consortium, "done")
    admin_app.state.runs = runs

    with TestClient(admin_app) as client:
        answer = client.post("/v1/runs/done/stop", headers=admin_auth[AdminRole.OPERATOR])
        logs = client.get("/v1/runs/done/logs", headers=admin_auth[AdminRole.AUDITOR])

    assert answer.status_code == 409
    assert "has ended" in _error(answer)["problem"]
    assert logs.status_code == 200
    entries = (offline_settings.consortium.state / TRAIL_FILE).read_text().splitlines()
    last = json.loads(entries[-1])
    assert (last["action"], last["target"], last["decision"]) == ("run.stop", "done", "refused")


@pytest.mark.parametrize(
    "run_config",
    [
        {"task": "kmeans", "kmeans-k": 4, "kmeans-public-corpus": "public.txt"},
        {"task": "classifier", "classifier-labels": "a,b,c", "classifier-rounds": 5},
    ],
)
def test_a_kmeans_or_classifier_run_config_is_accepted_with_the_managed_keys(
    offline_settings: AdminSettings, run_config: dict[str, Any], tmp_path: Path
) -> None:
    # Execute
    config = validated_run_config(
        offline_settings,
        RunRequest(run_config={**run_config, "eval-dataset": "none"}),
        "stats",
        tmp_path / "stats",
    )

    # Assert: the task's keys pass through; the admin API's own keys are set.
    assert {k: config[k] for k in run_config} == run_config
    assert config["run-tag"] == "stats"
    assert config["out-dir"] == str(tmp_path / "stats")
