"""Audit jobs: ``fedembed audit`` as a subprocess, followed through files that outlive it.

The admin API never imports the audit (a floor above it): :meth:`AuditJobs.start`
runs ``<settings.python> -m fedembed audit --out <home>/audit/<job> ...`` through a
small runner, ``<settings.python> -m coordinator.admin.audit_jobs <folder>``, started in
a session of its own (stopping the admin API does not stop an audit). Everything about a
job is a file in its folder, so a restarted admin API lists and follows it as before:

* ``job.json``: the request, the command (paths and flags, no secret), who asked, when;
* ``runner.pid``: the runner's process id;
* ``job.log``: the audit's progress and error lines; ``summary.json``: what the audit
  printed when it finished (report paths, ``json_sha256``, failed checks);
* ``exit_code``: written by the runner when the audit ends; after a successful audit
  the runner also records the views' SHA-256 (:func:`~coordinator.admin.audit_reports.
  record_views`);
* the report itself (:mod:`coordinator.admin.audit_reports`).

A job is ``running`` while its runner lives and has written no exit code, then
``succeeded`` (exit code 0) or ``failed`` (another code, or a runner that ended
without writing one). One job runs at a time: an audit uses every core it is given.

The released adapter to audit is named, never given as a path: exactly one of ``run``
(``<home>/runs/<run>/global_adapter``) and ``model_version`` (the registry's
``<home>/models/versions/<n>/``).
The consortium policy (``FEDEMBED_ADMIN_POLICY``) and the datasets folder
(``FEDEMBED_ADMIN_DATA_DIR``) are the admin API's; the audit's environment is the admin
API's without its ``FEDEMBED_ADMIN_*`` and ``FEDEMBED_INDEX_*`` variables (tokens, keys).
"""

from __future__ import annotations

import enum
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from coordinator.admin.audit_reports import record_views
from coordinator.admin.errors import AdminConflictError, AdminInvalidError, AdminNotFoundError
from coordinator.admin.settings import AdminSettings
from coordinator.run_folder import ADAPTER_DIR
from embedding_core.atomic_file import atomic_write_bytes
from index_client.names import NAME_RE

__all__ = ["AuditJob", "AuditJobRequest", "AuditJobs", "JobState", "main", "run_job"]

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
PID_FILE = "runner.pid"
LOG_FILE = "job.log"
SUMMARY_FILE = "summary.json"
EXIT_FILE = "exit_code"
LOG_TAIL_LINES = 40
LOG_TAIL_CHARS = 8000
_SECRET_ENV_PREFIXES = ("FEDEMBED_ADMIN_", "FEDEMBED_INDEX_")  # tokens, keys: not the audit's


class JobState(enum.StrEnum):
    """Where an audit job stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class AuditJobRequest:
    """What to audit: the released adapter named by ``run`` or by ``model_version``."""

    quick: bool = False
    strict: bool = False
    run: str | None = None
    model_version: int | None = None


@dataclass(frozen=True)
class AuditJob:
    """A job's state, read from its folder."""

    job: str
    state: JobState
    exit_code: int | None
    created: str
    finished: str | None
    requested_by: str
    request: dict[str, Any]
    command: list[str]
    log_tail: str
    json_sha256: str | None
    failed_checks: list[str]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int | None, folder: Path) -> bool:
    """Whether process ``pid`` lives and is this job's runner (not a reused id)."""
    if pid is None or pid <= 0:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            return str(folder).encode() in cmdline.read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:]


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (empty when absent or not a JSON object)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


class AuditJobs:
    """Start and follow audit jobs under ``settings.consortium.audit``."""

    def __init__(self, settings: AdminSettings) -> None:
        self._settings = settings
        self.root = settings.consortium.audit
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def _folder(self, job: str) -> Path:
        folder = self.root / job
        if not NAME_RE.fullmatch(job) or not (folder / JOB_FILE).is_file():
            raise AdminNotFoundError(
                f"no audit job {job!r}",
                expected="a job listed by GET /v1/audit/jobs",
                fix="list the jobs and use one's name (POST /v1/audit/jobs starts one)",
            )
        return folder

    def _reap(self) -> None:
        for job, child in list(self._children.items()):
            if child.poll() is not None:  # collects the exit status: no zombie left
                del self._children[job]

    def get(self, job: str) -> AuditJob:
        """Job ``job``'s state, exit code, log tail and report digest.

        Raises:
            AdminNotFoundError: When there is no such job.
        """
        self._reap()
        folder = self._folder(job)
        spec = _json_object(folder / JOB_FILE)  # a damaged job.json still shows the job's state
        alive = _alive(_read_int(folder / PID_FILE), folder)  # before the exit code: no race
        code = _read_int(folder / EXIT_FILE)
        if code is not None:
            state = JobState.SUCCEEDED if code == 0 else JobState.FAILED
        else:
            state = JobState.RUNNING if alive else JobState.FAILED
        log_tail = _tail(folder / LOG_FILE)
        if state is JobState.FAILED and code is None:
            log_tail += "\n(the job's runner ended without an exit code: it was killed)"
        summary = _json_object(folder / SUMMARY_FILE)
        failed = summary.get("failed_checks")
        request, command = spec.get("request"), spec.get("command")
        return AuditJob(
            job=job,
            state=state,
            exit_code=code,
            created=str(spec.get("created", "")),
            finished=_mtime(folder / EXIT_FILE) if code is not None else None,
            requested_by=str(spec.get("requested_by", "")),
            request=request if isinstance(request, dict) else {},
            command=[str(a) for a in command] if isinstance(command, list) else [],
            log_tail=log_tail,
            json_sha256=str(summary["json_sha256"]) if summary.get("json_sha256") else None,
            failed_checks=[str(c) for c in failed] if isinstance(failed, list) else [],
        )

    def jobs(self) -> list[AuditJob]:
        """Every job, oldest first."""
        if not self.root.is_dir():
            return []
        names = [
            f.name
            for f in self.root.iterdir()
            if NAME_RE.fullmatch(f.name) and (f / JOB_FILE).is_file()
        ]
        found = [self.get(name) for name in names]
        return sorted(found, key=lambda j: (j.created, j.job))

    def _adapter(self, request: AuditJobRequest) -> Path:
        home = self._settings.consortium
        if (request.run is None) == (request.model_version is None):
            given = "both" if request.run is not None else "neither of"
            raise AdminInvalidError(
                f"{given} 'run' and 'model_version' are set",
                expected="exactly one of 'run' (a run's published adapter) and "
                "'model_version' (a registry version)",
                fix="name the released adapter to audit once, by its run or its version",
            )
        if request.run is not None:
            run = home.runs / request.run
            if not NAME_RE.fullmatch(request.run) or not run.is_dir():
                raise AdminNotFoundError(
                    f"no run {request.run!r}",
                    expected="'run': a run listed by GET /v1/runs",
                    fix="list the runs and copy a name",
                )
            adapter = run / ADAPTER_DIR
            if not adapter.is_dir():
                raise AdminConflictError(
                    f"run {request.run!r} published no adapter",
                    expected="a run that aggregated and published global_adapter/",
                    fix="audit a run that succeeded, or a registry version ('model_version')",
                )
            return adapter
        number = request.model_version
        version = home.models / "versions" / str(number)
        if number is None or number < 1 or not version.is_dir():
            raise AdminNotFoundError(
                f"no model version {number}",
                expected="'model_version': a version listed by GET /v1/models",
                fix="list the registry's versions and copy one's number",
            )
        return version

    def command(self, folder: Path, request: AuditJobRequest) -> list[str]:
        """The ``fedembed audit`` command line of a job writing into ``folder``."""
        command = [self._settings.python, "-m", "fedembed", "audit", "--out", str(folder)]
        command += ["--adapter", str(self._adapter(request))]
        if self._settings.policy is not None:
            command += ["--policy", str(self._settings.policy)]
        if self._settings.data_dir is not None:
            command += ["--data-dir", str(self._settings.data_dir)]
        if request.quick:
            command.append("--quick")
        if request.strict:
            command.append("--strict")
        return command

    def start(self, request: AuditJobRequest, *, requested_by: str) -> AuditJob:
        """Start an audit job; it runs on after this returns (and after the admin API).

        Raises:
            AdminInvalidError: When the request names both a run and a model version.
            AdminNotFoundError: When the named run or model version does not exist.
            AdminConflictError: When another job is running, or the run has no adapter.
        """
        running = [j.job for j in self.jobs() if j.state is JobState.RUNNING]
        if running:
            raise AdminConflictError(
                f"audit job {running[0]!r} is running",
                expected="no running audit job (one at a time: an audit uses every core)",
                fix=f"follow it with GET /v1/audit/jobs/{running[0]} and start again when done",
            )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        job = f"{stamp}-{secrets.token_hex(3)}"
        folder = self.root / job
        command = self.command(folder, request)  # validates before anything is written
        folder.mkdir(parents=True)
        spec = {
            "job": job,
            "created": _now(),
            "requested_by": requested_by,
            "request": asdict(request),
            "command": command,
        }
        atomic_write_bytes(folder / JOB_FILE, json.dumps(spec, indent=2).encode(), mode=0o644)
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SECRET_ENV_PREFIXES)}
        runner = [self._settings.python, "-m", __name__, str(folder)]
        child = subprocess.Popen(
            runner,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=folder,
            env=env,
            start_new_session=True,  # the audit outlives a stopped or restarted admin API
        )
        self._children[job] = child
        atomic_write_bytes(folder / PID_FILE, f"{child.pid}\n".encode(), mode=0o644)
        logger.info("audit: job %s started (runner pid %d)", job, child.pid)
        return self.get(job)


def run_job(folder: Path) -> int:
    """Run the audit command of ``job.json`` in ``folder``; write its exit code last.

    SIGTERM and SIGINT are passed on to the audit, which then ends as it would.
    """
    spec = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    command: Sequence[str] = [str(a) for a in spec["command"]]
    with (folder / LOG_FILE).open("ab") as log, (folder / SUMMARY_FILE).open("wb") as out:
        try:
            audit = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=log)
        except OSError as exc:
            log.write(f"error: cannot start {command[0]}: {exc.strerror}\n".encode())
            code = 127
        else:

            def forward(signum: int, _frame: FrameType | None) -> None:
                audit.send_signal(signum)

            signal.signal(signal.SIGTERM, forward)
            signal.signal(signal.SIGINT, forward)
            code = audit.wait()
    if code == 0:
        record_views(folder)
    atomic_write_bytes(folder / EXIT_FILE, f"{code}\n".encode(), mode=0o644)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m coordinator.admin.audit_jobs <job folder>``: the job's runner."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not (Path(args[0]) / JOB_FILE).is_file():
        print("usage: python -m coordinator.admin.audit_jobs <audit job folder>", file=sys.stderr)
        return 2
    return run_job(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
