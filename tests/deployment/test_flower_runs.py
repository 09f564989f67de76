"""Runs through Flower's own ``flwr`` CLI: arguments, answers, and a SuperLink that is down."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from deployment.flower_processes import free_port, write_flwr_connection
from deployment.flower_runs import FlowerRun, FlowerRunError, list_runs, run_config_args
from kits.certificates import make_ca, pem_cert


def test_run_config_overrides_are_toml_values() -> None:
    args = run_config_args({"num-server-rounds": 2, "eval-dataset": "none", "dp-enabled": True})

    assert args == ["--run-config", 'num-server-rounds=2 eval-dataset="none" dp-enabled=true']
    assert run_config_args({}) == []


def test_a_row_of_flwr_ls_keeps_the_status_and_its_outcome() -> None:
    row = {
        "run-id": "8154",
        "status": "finished:failed",
        "status-details": "ServerApp raised",
        "elapsed": 3.5,
        "pending-at": "2026-01-01 00:00:00Z",
        "running-at": "2026-01-01 00:00:01Z",
        "finished-at": "2026-01-01 00:00:04Z",
    }

    run = FlowerRun.from_json(row)

    assert (run.run_id, run.status, run.sub_status, run.finished) == (
        8154,
        "finished",
        "failed",
        True,
    )
    assert FlowerRun.from_json({"run-id": "1", "status": "running"}).finished is False


def test_a_superlink_that_does_not_answer_is_an_error_with_flowers_reason(tmp_path: Path) -> None:
    # Prepare: a connection to a port where nothing listens.
    ca = tmp_path / "ca.crt"
    _, certificate = make_ca("c0ffee00", dt.datetime.now(dt.UTC), 1)
    ca.write_bytes(pem_cert(certificate))
    write_flwr_connection(tmp_path, "down", address=f"127.0.0.1:{free_port()}", ca_cert=ca)

    # Execute / Assert
    with pytest.raises(FlowerRunError, match="flwr ls") as caught:
        list_runs("down", tmp_path)
    assert "unavailable" in caught.value.problem.lower()
    assert "FLWR_HOME" in caught.value.fix
