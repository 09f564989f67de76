"""Federation runs through Flower's own Control API: ``flwr run / ls / stop / log``.

Each function runs one ``flwr`` command (:func:`deployment.flower_processes.flwr_command`)
with ``FLWR_HOME`` naming the SuperLink connection, asks for ``--format json`` where the
command has it, and turns Flower's answer into plain values. A failure (the SuperLink
cannot be reached, an unknown run id, a refused submission) raises
:class:`FlowerRunError` with Flower's own message.

Flower's run states: ``pending``, ``starting``, ``running``, ``finished`` with a
sub-status ``completed``, ``failed`` or ``stopped`` (``flwr ls`` writes them
``finished:completed``); :class:`FlowerRun` keeps both.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployment.flower_processes import flwr_command
from embedding_core.errors import FedembedError

__all__ = [
    "FlowerRun",
    "FlowerRunError",
    "list_runs",
    "run_config_args",
    "run_logs",
    "run_status",
    "stop_run",
    "submit_run",
]

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CLI_LINE = re.compile(
    r"^(?:(?:INFO|DEBUG|WARNING)\s*:\s+(?:Printing logstream|HTTP client closed)"
    r"|Using SuperLink: )"
)


class FlowerRunError(FedembedError):
    """A ``flwr`` command failed (its message says why)."""


@dataclass(frozen=True)
class FlowerRun:
    """One run as ``flwr ls --format json`` reports it."""

    run_id: int
    status: str
    sub_status: str
    details: str
    pending_at: str
    running_at: str
    finished_at: str
    elapsed_seconds: float

    @property
    def finished(self) -> bool:
        """Whether the run has ended (completed, failed or stopped)."""
        return self.status == "finished"

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> FlowerRun:
        """Read one row of ``flwr ls --format json``'s ``runs``."""
        status, _, sub_status = str(row.get("status", "")).partition(":")
        return cls(
            run_id=int(row["run-id"]),
            status=status,
            sub_status=sub_status,
            details=str(row.get("status-details", "")),
            pending_at=str(row.get("pending-at", "")),
            running_at=str(row.get("running-at", "")),
            finished_at=str(row.get("finished-at", "")),
            elapsed_seconds=float(row.get("elapsed", 0.0)),
        )


def run_config_args(run_config: Mapping[str, Any]) -> list[str]:
    """``--run-config`` arguments for ``run_config`` (TOML values: strings quoted)."""
    if not run_config:
        return []
    overrides = " ".join(f"{key}={json.dumps(value)}" for key, value in run_config.items())
    return ["--run-config", overrides]


def _json_answer(args: list[str], *, flwr_home: Path, timeout: float) -> dict[str, Any]:
    """Run ``flwr ARGS --format json`` and return its JSON answer, or raise its error."""
    result = flwr_command([*args, "--format", "json"], flwr_home=flwr_home, timeout=timeout)
    text = _ANSI.sub("", result.stdout).strip()
    start = text.find("{")
    answer: dict[str, Any] = {}
    if start >= 0:
        try:
            loaded = json.loads(text[start:])
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, dict):
            answer = loaded
    if result.returncode != 0 or answer.get("success") is not True:
        message = str(answer.get("error-message") or result.stderr or result.stdout).strip()
        raise FlowerRunError(
            f"`flwr {args[0]}` failed: {message or f'exit code {result.returncode}'}",
            expected="a SuperLink that answers on its Control API",
            fix="check that the SuperLink runs and that FLWR_HOME/config.toml names it",
        )
    return answer


def submit_run(
    project_dir: Path,
    connection: str,
    flwr_home: Path,
    run_config: Mapping[str, Any],
    *,
    timeout: float = 300.0,
) -> int:
    """``flwr run PROJECT CONNECTION --run-config ...`` (no streaming); returns the run id."""
    args = ["run", str(project_dir), connection, *run_config_args(run_config)]
    logger.info("flwr run: connection=%s keys=%s", connection, sorted(run_config))
    answer = _json_answer(args, flwr_home=flwr_home, timeout=timeout)
    run_id = answer.get("run-id")
    if run_id is None:
        raise FlowerRunError(
            "`flwr run` answered without a run id",
            expected="a run id from the SuperLink",
            fix="check the SuperLink's log",
        )
    return int(run_id)


def list_runs(connection: str, flwr_home: Path, *, timeout: float = 60.0) -> list[FlowerRun]:
    """Every run the SuperLink knows (``flwr ls``), newest first."""
    answer = _json_answer(["ls", connection], flwr_home=flwr_home, timeout=timeout)
    return [FlowerRun.from_json(row) for row in answer.get("runs", [])]


def run_status(
    run_id: int, connection: str, flwr_home: Path, *, timeout: float = 60.0
) -> FlowerRun:
    """One run's state (``flwr ls --run-id``)."""
    answer = _json_answer(
        ["ls", connection, "--run-id", str(run_id)], flwr_home=flwr_home, timeout=timeout
    )
    runs = [FlowerRun.from_json(row) for row in answer.get("runs", [])]
    if not runs:
        raise FlowerRunError(
            f"the SuperLink knows no run {run_id}",
            expected="the id of a run submitted to this SuperLink",
            fix="list the runs with `flwr ls`",
        )
    return runs[0]


def stop_run(run_id: int, connection: str, flwr_home: Path, *, timeout: float = 60.0) -> None:
    """Stop a run (``flwr stop``)."""
    _json_answer(["stop", str(run_id), connection], flwr_home=flwr_home, timeout=timeout)


def run_logs(run_id: int, connection: str, flwr_home: Path, *, timeout: float = 60.0) -> str:
    """The run's log so far (``flwr log --show``: printed once, not streamed)."""
    result = flwr_command(
        ["log", str(run_id), connection, "--show"], flwr_home=flwr_home, timeout=timeout
    )
    if result.returncode != 0:
        message = _ANSI.sub("", result.stderr or result.stdout).strip()
        raise FlowerRunError(
            f"`flwr log` failed: {message or f'exit code {result.returncode}'}",
            expected="the id of a run submitted to this SuperLink",
            fix="check that the SuperLink runs and that FLWR_HOME/config.toml names it",
        )
    lines = _ANSI.sub("", result.stdout).splitlines()
    return "\n".join(line for line in lines if not _CLI_LINE.match(line)).strip("\n") + "\n"
