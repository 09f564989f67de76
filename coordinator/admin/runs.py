"""Federation runs of the admin API: start, list, status with per-round progress, stop, logs.

A run is submitted to the SuperLink with Flower's own ``flwr run`` (no re-implementation:
:mod:`deployment.flower_runs`); its state comes from ``flwr ls``, its log from ``flwr log``.

Every run gets a name (the operator's, or ``run-<UTC time>-<random>``) and its own folder
``<home>/runs/<name>/``, created exclusively: a name is never reused and no run writes
into another's folder. The admin API sets the keys that tie the run to its folder and its
consortium (``out-dir``, ``coordinator-kit``, ``run-tag`` = the name, ``data-dir``); the
operator's ``run_config`` may set every other key of ``[tool.flwr.app.config]``, validated
by :class:`federation.run_config.FederationConfig` before anything is submitted.

The folder holds ``run.json`` (the request, the submitted config, Flower's run id, times
and the last known state), and what the ServerApp writes there each round (the
federation ledger, ``central_metrics.json``) and at the end (``history.json``, the
adapter). :meth:`RunManager.status` reads them for the progress: rounds done of the total,
each round's released flag, answers, refusals and central metrics, and the final state:
``succeeded``, ``failed`` (with the reason) or ``stopped``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coordinator.admin.errors import (
    AdminConflictError,
    AdminInvalidError,
    AdminNotFoundError,
    AdminUnavailableError,
)
from coordinator.admin.run_progress import RunState, read_json, run_view, state_of
from coordinator.admin.run_request import RunRequest, validated_run_config
from coordinator.admin.settings import AdminSettings
from coordinator.admin.superlink import ensure_connection
from coordinator.run_folder import (
    HISTORY_FILE,
)
from deployment.flower_runs import (
    FlowerRun,
    FlowerRunError,
    list_runs,
    run_logs,
    run_status,
    stop_run,
    submit_run,
)
from embedding_core.errors import FedembedError
from federation.run_config import FederationConfig
from index_client.names import NAME_RE, NAME_RULE

__all__ = [
    "RUN_FILE",
    "RUN_LOG_FILE",
    "RunManager",
    "RunState",
]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
RUN_LOG_FILE = "flwr.log"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _save_record(folder: Path, record: dict[str, Any]) -> None:
    """Write ``run.json``; ``status`` repeats ``state`` for readers of the run's outcome."""
    record["status"] = record.get("state")
    _write_json(folder / RUN_FILE, record)


def _check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise AdminInvalidError(
            f"name {name!r} is not a valid run name",
            expected=NAME_RULE,
            fix="choose another name, or leave name out for a generated one",
        )


def _name_taken(name: str) -> AdminConflictError:
    return AdminConflictError(
        f"a run named {name!r} exists already",
        expected="a name no run of this consortium has used",
        fix="choose another name (run folders are never reused), or leave name out for a "
        "generated one",
    )


class RunManager:
    """The consortium's federation runs, each in its own folder under ``<home>/runs/``.

    Args:
        settings: The admin API's settings (home, project folder, data folder).
        connect: Returns the ``flwr`` connection name (default: write the SuperLink
            connection into the home's FLWR_HOME, :func:`ensure_connection`).
    """

    def __init__(
        self, settings: AdminSettings, *, connect: Callable[[], str] | None = None
    ) -> None:
        self.settings = settings
        self.home = settings.consortium
        self._connect = connect or (lambda: ensure_connection(settings))
        self._lock = threading.Lock()
        self._secrets = [
            s.get_secret_value()
            for s in (
                settings.gateway_admin_token,
                getattr(settings, "metrics_token", None),
                getattr(settings, "trail_key", None),
            )
            if s is not None and s.get_secret_value()
        ]

    # --- start ------------------------------------------------------------------------

    def _check_reachable(self, timeout: float = 5.0) -> None:
        """Fail fast (nothing claimed) when nothing listens at the SuperLink's Control API."""
        address = self.settings.superlink_control
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
                return
        except (OSError, ValueError):
            pass
        raise AdminUnavailableError(
            f"the SuperLink's Control API does not answer at {address}",
            expected="a running SuperLink (`fedembed coordinator superlink`) whose Control API "
            "is at FEDEMBED_ADMIN_SUPERLINK_CONTROL",
            fix="start the SuperLink, or set FEDEMBED_ADMIN_SUPERLINK_CONTROL to its "
            "Control API host:port, then try again (no run was created)",
        )

    def _allocate(self, requested: str | None) -> tuple[str, Path]:
        """A new run name and its folder, created exclusively (never reused)."""
        self.home.runs.mkdir(parents=True, exist_ok=True)
        if requested is not None:
            _check_name(requested)
            folder = self.home.runs / requested
            try:
                folder.mkdir()
            except FileExistsError:
                raise _name_taken(requested) from None
            return requested, folder
        for _ in range(16):
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            name = f"run-{stamp}-{secrets.token_hex(3)}"
            folder = self.home.runs / name
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            return name, folder
        raise AdminConflictError(  # pragma: no cover - 16 random collisions
            "no free run name could be found",
            expected="a free run name",
            fix="give the run a name",
        )

    def start(self, request: RunRequest) -> dict[str, Any]:
        """Validate, give the run its own folder and submit it with ``flwr run``.

        Raises:
            AdminInvalidError: The name or a run_config key is invalid (named).
            AdminConflictError: The name is taken, or the consortium has no kit.
            AdminUnavailableError: The SuperLink cannot be reached or refused the run.
        """
        if not self.home.coordinator_kit.is_dir():
            raise AdminConflictError(
                "the consortium has no coordinator kit",
                expected=f"provisioned kits under {self.home.kits}",
                fix=f"provision the consortium: `fedembed coordinator provision --out "
                f"{self.home.kits}`",
            )
        if request.name is not None:
            _check_name(request.name)
            if (self.home.runs / request.name).exists():
                raise _name_taken(request.name)
        # Validate before a folder exists (the folder's path is only a placeholder here).
        validated_run_config(
            self.settings, request, request.name or "run", self.home.runs / "pending"
        )
        connection = self._connect()
        self._check_reachable()
        with self._lock:
            name, folder = self._allocate(request.name)
        config = validated_run_config(self.settings, request, name, folder)
        rounds = FederationConfig.from_run_config(config).num_server_rounds
        record: dict[str, Any] = {
            "name": name,
            "request": {"name": request.name, "run_config": dict(request.run_config)},
            "run_config": config,
            "rounds_total": rounds,
            "flower_run_id": None,
            "created": _now(),
            "submitted": None,
            "finished": None,
            "state": RunState.PENDING,
        }
        _save_record(folder, record)
        try:
            run_id = submit_run(self.settings.project_dir, connection, self.home.flwr_home, config)
        except FlowerRunError as err:
            record.update(state=RunState.FAILED, finished=_now(), error=err.problem)
            _save_record(folder, record)
            raise AdminUnavailableError(
                f"the SuperLink did not accept run {name!r}: {err.problem}",
                expected="a SuperLink whose Control API answers at "
                f"{self.settings.superlink_control}",
                fix="start the SuperLink (`fedembed coordinator superlink`) and try again "
                "(the failed run keeps its folder; the next one gets a new name)",
            ) from None
        record.update(flower_run_id=run_id, submitted=_now())
        _save_record(folder, record)
        logger.info("runs: started name=%s flower_run_id=%d", name, run_id)
        return run_view(record, folder)

    # --- reading ----------------------------------------------------------------------

    def _folder(self, name: str) -> Path:
        folder = self.home.runs / name
        if not NAME_RE.fullmatch(name) or not (folder / RUN_FILE).is_file():
            raise AdminNotFoundError(
                f"no run named {name!r}",
                expected="the name of a run started through the admin API",
                fix="list the runs with GET /v1/runs",
            )
        return folder

    def _record(self, folder: Path) -> dict[str, Any]:
        record = read_json(folder / RUN_FILE)
        if record is None:
            raise AdminUnavailableError(
                f"{folder / RUN_FILE} cannot be read",
                expected="the run's run.json",
                fix="restore the run folder from a backup",
            )
        return record

    def _refresh(self, record: dict[str, Any], folder: Path, flower: FlowerRun | None) -> None:
        """Update ``record`` (and run.json) from Flower's view of the run."""
        if flower is None or record.get("state") in RunState.FINAL:
            return
        state = state_of(flower, read_json(folder / HISTORY_FILE))
        changed = state != record.get("state")
        record["state"] = state
        record["flower_status"] = ":".join(filter(None, (flower.status, flower.sub_status)))
        if flower.details and flower.details != "N/A":
            record["flower_details"] = flower.details
        if state in RunState.FINAL:
            record["finished"] = _now()
            self._save_log(record, folder)
        if changed:
            _save_record(folder, record)

    def _flower_run(self, record: Mapping[str, Any]) -> FlowerRun | None:
        run_id = record.get("flower_run_id")
        if run_id is None or record.get("state") in RunState.FINAL:
            return None
        try:
            return run_status(int(run_id), self._connect(), self.home.flwr_home)
        except (FlowerRunError, AdminUnavailableError) as err:
            logger.warning("runs: state of flower run %s unknown: %s", run_id, err.problem)
            return None

    def list(self) -> list[dict[str, Any]]:
        """Every run, newest first, with its state (refreshed from one ``flwr ls``)."""
        if not self.home.runs.is_dir():
            return []
        folders = [f for f in self.home.runs.iterdir() if (f / RUN_FILE).is_file()]
        records = [(self._record(f), f) for f in folders]
        flower: dict[int, FlowerRun] = {}
        if any(r.get("state") not in RunState.FINAL and r.get("flower_run_id") for r, _ in records):
            try:
                flower = {
                    run.run_id: run for run in list_runs(self._connect(), self.home.flwr_home)
                }
            except (FlowerRunError, AdminUnavailableError) as err:
                logger.warning("runs: run states unknown: %s", err.problem)
        views = []
        for record, folder in records:
            run_id = record.get("flower_run_id")
            self._refresh(record, folder, flower.get(int(run_id)) if run_id else None)
            views.append(run_view(record, folder))
        return sorted(views, key=lambda v: str(v.get("created")), reverse=True)

    def status(self, name: str) -> dict[str, Any]:
        """One run's state and per-round progress."""
        folder = self._folder(name)
        record = self._record(folder)
        self._refresh(record, folder, self._flower_run(record))
        return run_view(record, folder)

    # --- stop, logs -------------------------------------------------------------------

    def stop(self, name: str) -> dict[str, Any]:
        """Stop a run that has not finished (``flwr stop``).

        Raises:
            AdminConflictError: The run has finished already.
        """
        folder = self._folder(name)
        record = self._record(folder)
        self._refresh(record, folder, self._flower_run(record))
        if record.get("state") in RunState.FINAL or record.get("flower_run_id") is None:
            raise AdminConflictError(
                f"run {name!r} has ended ({record.get('state')})",
                expected="a run that is pending, starting or running",
                fix="nothing to stop; start a new run with POST /v1/runs",
            )
        try:
            stop_run(int(record["flower_run_id"]), self._connect(), self.home.flwr_home)
        except FlowerRunError as err:
            raise AdminUnavailableError(
                f"run {name!r} could not be stopped: {err.problem}",
                expected="a SuperLink that answers on its Control API",
                fix="check that the SuperLink runs, then try again",
            ) from None
        record.update(state=RunState.STOPPED, finished=_now(), flower_status="finished:stopped")
        _save_record(folder, record)
        self._save_log(record, folder)
        logger.info("runs: stopped name=%s", name)
        return run_view(record, folder)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+", r"\1[redacted]", text)

    def _save_log(self, record: Mapping[str, Any], folder: Path) -> None:
        """Keep the finished run's log in its folder (the SuperLink's state may go)."""
        run_id = record.get("flower_run_id")
        if run_id is None:
            return
        try:
            text = run_logs(int(run_id), self._connect(), self.home.flwr_home, timeout=30.0)
        except (FedembedError, OSError) as err:
            logger.warning("runs: log of %s not saved: %s", record.get("name"), err)
            return
        (folder / RUN_LOG_FILE).write_text(self._redact(text), encoding="utf-8")

    def logs(self, name: str) -> str:
        """The run's log (the ServerApp's output through ``flwr log``), secrets redacted."""
        folder = self._folder(name)
        record = self._record(folder)
        saved = folder / RUN_LOG_FILE
        if saved.is_file():
            return saved.read_text(encoding="utf-8", errors="replace")
        run_id = record.get("flower_run_id")
        if run_id is None:
            return ""
        try:
            text = run_logs(int(run_id), self._connect(), self.home.flwr_home, timeout=20.0)
        except FlowerRunError as err:
            raise AdminUnavailableError(
                f"the log of run {name!r} cannot be read: {err.problem}",
                expected="a SuperLink that answers on its Control API",
                fix="check that the SuperLink runs, then try again",
            ) from None
        except FedembedError:
            return ""  # no log line yet: `flwr log` waits for the first one
        return self._redact(text)
