"""Audit jobs and reports through the admin API: a real ``fedembed audit`` subprocess that
fails fast, a runner that succeeds, reports written by the real report writer, tampering."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coordinator.admin.audit_jobs import JOB_FILE, AuditJobs, JobState
from coordinator.admin.audit_reports import record_views
from coordinator.admin.home import ConsortiumHome
from coordinator.admin.settings import AdminSettings
from coordinator.admin.tokens import AdminRole
from report import write_report

PATIENCE_S = 300.0  # a loaded machine only slows the test; a job that never ends fails it

RESULTS: dict[str, Any] = {
    "report_version": 1,
    "title": "fedembed compliance audit",
    "generated_at": "2026-01-01T00:00:00+00:00",
    "fedembed_version": "test",
    "subject": {"adapter": None},
    "policy": {"name": "consortium default"},
    "attacks": [],
    "checks": [{"id": "privacy.epsilon", "status": "pass"}],
    "regulations": [],
}

# What `fedembed audit` does once its attacks ran: the real report writer, then the summary.
WRITE_REPORT = """
import json, sys
from pathlib import Path
from report import write_report
files = write_report(json.loads(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps({"json_sha256": files.json_sha256, "failed_checks": []}))
print("audit: done", file=sys.stderr)
"""


def _wait(client: TestClient, job: str, auth: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + PATIENCE_S
    while True:
        answer = client.get(f"/v1/audit/jobs/{job}", headers=auth)
        assert answer.status_code == 200, answer.text
        if answer.json()["state"] != "running" or time.monotonic() > deadline:
            return dict(answer.json())
        time.sleep(0.5)


def test_a_job_whose_audit_fails_fast_ends_failed_with_the_error_in_its_log(
    admin_client: TestClient,
    admin_auth: dict[AdminRole, dict[str, str]],
    admin_home: ConsortiumHome,
    admin_settings: AdminSettings,
) -> None:
    # Prepare: a run whose published adapter folder is empty (no manifest)
    (admin_home.runs / "run-1" / "global_adapter").mkdir(parents=True)
    operator = admin_auth[AdminRole.OPERATOR]
    # Execute: start, try a second job at once, follow the first until it ends
    started = admin_client.post(
        "/v1/audit/jobs", json={"run": "run-1", "quick": True}, headers=operator
    )
    job = started.json()["job"]
    second = admin_client.post("/v1/audit/jobs", json={"run": "run-1"}, headers=operator)
    ended = _wait(admin_client, job, admin_auth[AdminRole.AUDITOR])
    relisted = AuditJobs(admin_settings).jobs()  # as a restarted admin API sees it
    # Assert: the audit ran as a subprocess with the request's flags, and failed clearly
    assert started.status_code == 202, started.text
    assert started.json()["state"] == "running"
    command = started.json()["command"]
    assert command[1:4] == ["-m", "fedembed", "audit"]
    assert command[command.index("--out") + 1] == str(admin_home.audit / job)
    assert command[command.index("--adapter") + 1] == str(
        admin_home.runs / "run-1" / "global_adapter"
    )
    assert "--quick" in command
    assert second.status_code == 409
    assert job in second.json()["error"]["problem"]
    assert ended["state"] == "failed"
    assert ended["exit_code"] == 2
    assert "no adapter manifest" in ended["log_tail"]
    assert "Traceback" not in ended["log_tail"]
    assert [(j.job, j.state, j.exit_code) for j in relisted] == [(job, JobState.FAILED, 2)]
    trail = (admin_home.state / "trail.jsonl").read_text()
    assert '"audit.start"' in trail
    assert job in trail


def test_job_requests_are_validated_before_anything_runs(
    admin_client: TestClient,
    admin_auth: dict[AdminRole, dict[str, str]],
    admin_home: ConsortiumHome,
) -> None:
    # Prepare: a run that published nothing
    (admin_home.runs / "run-empty").mkdir(parents=True)
    operator = admin_auth[AdminRole.OPERATOR]
    # Execute
    both = admin_client.post(
        "/v1/audit/jobs", json={"run": "run-empty", "model_version": 1}, headers=operator
    )
    neither = admin_client.post("/v1/audit/jobs", json={"quick": True}, headers=operator)
    unknown_run = admin_client.post("/v1/audit/jobs", json={"run": "nope"}, headers=operator)
    no_adapter = admin_client.post("/v1/audit/jobs", json={"run": "run-empty"}, headers=operator)
    unknown_version = admin_client.post(
        "/v1/audit/jobs", json={"model_version": 7}, headers=operator
    )
    extra = admin_client.post("/v1/audit/jobs", json={"adapter": "/etc"}, headers=operator)
    traversal = admin_client.post("/v1/audit/jobs", json={"run": "../x"}, headers=operator)
    as_auditor = admin_client.post("/v1/audit/jobs", json={}, headers=admin_auth["auditor"])
    listed = admin_client.get("/v1/audit/jobs", headers=operator)
    # Assert: each refusal in the API's words, and no job was started
    assert (both.status_code, neither.status_code) == (422, 422)
    assert "model_version" in both.json()["error"]["expected"]
    assert "neither" in neither.json()["error"]["problem"]
    assert (unknown_run.status_code, no_adapter.status_code) == (404, 409)
    assert unknown_version.status_code == 404
    assert (extra.status_code, traversal.status_code, as_auditor.status_code) == (422, 422, 403)
    assert listed.json() == {"jobs": []}
    assert not admin_home.audit.exists() or list(admin_home.audit.iterdir()) == []


def test_the_runner_records_a_succeeded_job_whose_report_verifies(
    admin_client: TestClient,
    admin_auth: dict[AdminRole, dict[str, str]],
    admin_home: ConsortiumHome,
) -> None:
    # Prepare: a job folder whose command writes a report with the real writer
    folder = admin_home.audit / "job-ok"
    folder.mkdir(parents=True)
    command = [sys.executable, "-c", WRITE_REPORT, json.dumps(RESULTS), str(folder)]
    spec = {"job": "job-ok", "created": "2026-01-01T00:00:00+00:00", "command": command}
    (folder / JOB_FILE).write_text(json.dumps(spec))
    # Execute: the runner, as the admin API starts it, then the API's view of the job
    runner = subprocess.run(
        [sys.executable, "-m", "coordinator.admin.audit_jobs", str(folder)],
        capture_output=True,
        check=False,
        timeout=PATIENCE_S,
    )
    auth = admin_auth[AdminRole.AUDITOR]
    job = admin_client.get("/v1/audit/jobs/job-ok", headers=auth).json()
    report = admin_client.get("/v1/audit/reports/job-ok", headers=auth).json()
    verified = admin_client.get("/v1/audit/reports/job-ok/verify", headers=auth).json()
    # Assert
    assert runner.returncode == 0, runner.stderr
    assert (job["state"], job["exit_code"]) == ("succeeded", 0)
    assert "audit: done" in job["log_tail"]
    recorded = (folder / "report.json.sha256").read_text().split()[0]
    assert job["json_sha256"] == recorded
    assert report["json_sha256"] == recorded
    assert {f["name"] for f in report["files"]} == {"report.json", "report.html", "report.pdf"}
    assert verified["ok"] is True
    assert {f["name"]: f["status"] for f in verified["files"]} == {
        "report.json": "ok",
        "report.html": "ok",
        "report.pdf": "ok",
    }
    assert verified["html_names_json_sha256"] is True


@pytest.mark.parametrize(
    ("tampered", "statuses"),
    [
        ("report.json", {"report.json": "mismatch", "report.html": "ok", "report.pdf": "ok"}),
        ("report.pdf", {"report.json": "ok", "report.html": "ok", "report.pdf": "mismatch"}),
    ],
)
def test_a_tampered_report_file_is_a_mismatch(
    admin_client: TestClient,
    admin_auth: dict[AdminRole, dict[str, str]],
    admin_home: ConsortiumHome,
    tampered: str,
    statuses: dict[str, str],
) -> None:
    # Prepare: a job's report (views recorded by the runner), then one byte changed
    folder = admin_home.audit / "job-x"
    write_report(RESULTS, folder)
    record_views(folder)
    data = bytearray((folder / tampered).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / tampered).write_bytes(bytes(data))
    # Execute
    verified = admin_client.get(
        "/v1/audit/reports/job-x/verify", headers=admin_auth[AdminRole.AUDITOR]
    ).json()
    # Assert
    assert verified["ok"] is False
    assert {f["name"]: f["status"] for f in verified["files"]} == statuses


def test_a_command_line_report_is_listed_verified_and_served(
    admin_client: TestClient,
    admin_auth: dict[AdminRole, dict[str, str]],
    admin_home: ConsortiumHome,
) -> None:
    # Prepare: a report written by `fedembed audit --out <home>/audit/cli-report` (no job)
    files = write_report(RESULTS, admin_home.audit / "cli-report")
    auth = admin_auth[AdminRole.AUDITOR]
    # Execute
    listed = admin_client.get("/v1/audit/reports", headers=auth)
    verified = admin_client.get("/v1/audit/reports/cli-report/verify", headers=auth).json()
    html = admin_client.get("/v1/audit/reports/cli-report/files/report.html", headers=auth)
    other = admin_client.get("/v1/audit/reports/cli-report/files/job.json", headers=auth)
    missing = admin_client.get("/v1/audit/reports/nope/verify", headers=auth)
    anonymous = admin_client.get("/v1/audit/reports")
    # Assert: the JSON checks against the audit's record; the views have none to check
    (report,) = listed.json()["reports"]
    assert report["job"] == "cli-report"
    assert report["json_sha256"] == files.json_sha256
    sums = {f["name"]: f["sha256"] for f in report["files"]}
    assert sums["report.json"] == files.json_sha256
    assert verified["ok"] is True
    assert {f["name"]: f["status"] for f in verified["files"]} == {
        "report.json": "ok",
        "report.html": "unrecorded",
        "report.pdf": "unrecorded",
    }
    assert html.status_code == 200
    assert files.json_sha256 in html.text
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert (other.status_code, missing.status_code, anonymous.status_code) == (422, 404, 401)
