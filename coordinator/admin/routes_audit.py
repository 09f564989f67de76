"""``/v1/audit``: audit reports (list, verify, download) and audit jobs (start, follow).

Any role reads reports and jobs; an operator or an admin starts a job (``fedembed
audit`` as a subprocess, :mod:`coordinator.admin.audit_jobs`), which is recorded in the
trail. Reports are verified against the SHA-256 the audit recorded
(:mod:`coordinator.admin.audit_reports`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from coordinator.admin.audit_jobs import AuditJob, AuditJobRequest, AuditJobs
from coordinator.admin.audit_reports import (
    HTML_FILE,
    PDF_FILE,
    AuditReports,
    ReportSummary,
)
from coordinator.admin.deps import AuditJobsDep, AuditReportsDep, OperatorDep, ReaderDep, TrailDep
from coordinator.admin.settings import AdminSettings
from index_client.names import NAME_PATTERN

__all__ = [
    "AuditJobCreate",
    "AuditJobList",
    "AuditJobOut",
    "FileCheckOut",
    "ReportFileOut",
    "ReportList",
    "ReportOut",
    "ReportVerificationOut",
    "install",
    "router",
]

router = APIRouter(prefix="/v1/audit", tags=["audit"])

JobName = Annotated[str, Path(pattern=NAME_PATTERN, description="The job (report folder) name.")]
ReportFileName = Literal["report.json", "report.html", "report.pdf"]
_MEDIA = {"report.json": "application/json", HTML_FILE: "text/html", PDF_FILE: "application/pdf"}
# a report page is shown as it is: no script, no request beyond itself
_REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


class AuditJobCreate(BaseModel):
    """An audit job to start: the released adapter and how thoroughly.

    The adapter is named by exactly one of ``run`` and ``model_version``.
    """

    model_config = ConfigDict(extra="forbid")

    quick: bool = Field(default=False, description="Small samples and budgets (minutes).")
    strict: bool = Field(default=False, description="The job fails when a policy check fails.")
    run: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="Audit this run's published adapter."
    )
    model_version: int | None = Field(
        default=None, ge=1, description="Audit this registry version's adapter."
    )


class AuditJobOut(BaseModel):
    """An audit job: its state, exit code, log tail and the report's SHA-256 when done."""

    job: str
    state: Literal["running", "succeeded", "failed"]
    exit_code: int | None
    created: str
    finished: str | None
    requested_by: str
    request: dict[str, Any]
    command: list[str]
    log_tail: str
    json_sha256: str | None
    failed_checks: list[str]

    @classmethod
    def of(cls, job: AuditJob) -> AuditJobOut:
        """The answer for ``job``."""
        return cls.model_validate(asdict(job) | {"state": job.state.value})


class AuditJobList(BaseModel):
    """Every audit job, oldest first."""

    jobs: list[AuditJobOut]


class ReportFileOut(BaseModel):
    """One file of a report: its size and SHA-256 now."""

    name: str
    bytes: int
    sha256: str


class ReportOut(BaseModel):
    """A report: its files and the SHA-256 the audit recorded for report.json."""

    job: str
    modified: str
    json_sha256: str | None
    files: list[ReportFileOut]

    @classmethod
    def of(cls, report: ReportSummary) -> ReportOut:
        """The answer for ``report``."""
        return cls.model_validate(report, from_attributes=True)


class ReportList(BaseModel):
    """Every report under the consortium's audit folder."""

    reports: list[ReportOut]


class FileCheckOut(BaseModel):
    """One file against its recorded SHA-256: ok, mismatch, missing or unrecorded."""

    name: str
    status: Literal["ok", "mismatch", "missing", "unrecorded"]
    recorded_sha256: str | None
    sha256: str | None


class ReportVerificationOut(BaseModel):
    """A report checked: ``ok`` when the JSON's record exists and no file changed or went."""

    job: str
    ok: bool
    files: list[FileCheckOut]
    html_names_json_sha256: bool


def install(app: FastAPI, settings: AdminSettings) -> None:
    """Put the audit jobs and reports of ``settings.consortium.audit`` on ``app.state``."""
    app.state.audit_jobs = AuditJobs(settings)
    app.state.audit_reports = AuditReports(settings.consortium.audit)


@router.get("/reports", response_model=ReportList)
def list_reports(caller: ReaderDep, reports: AuditReportsDep) -> ReportList:
    """Every report with each file's SHA-256 and the audit's record of the JSON's."""
    return ReportList(reports=[ReportOut.of(r) for r in reports.summaries()])


@router.get("/reports/{job}", response_model=ReportOut)
def get_report(job: JobName, caller: ReaderDep, reports: AuditReportsDep) -> ReportOut:
    """One report's files and SHA-256."""
    return ReportOut.of(reports.summary(job))


@router.get("/reports/{job}/verify", response_model=ReportVerificationOut)
def verify_report(
    job: JobName, caller: ReaderDep, reports: AuditReportsDep
) -> ReportVerificationOut:
    """Check each file of a report against the recorded SHA-256 (ok/mismatch per file)."""
    return ReportVerificationOut.model_validate(asdict(reports.verify(job)))


@router.get(
    "/reports/{job}/files/{name}",
    response_class=FileResponse,
    responses={200: {"content": {m: {} for m in _MEDIA.values()}}},
)
def report_file(
    job: JobName, name: ReportFileName, caller: ReaderDep, reports: AuditReportsDep
) -> FileResponse:
    """Download one file of a report (the HTML under a CSP that allows no script)."""
    return FileResponse(
        reports.file(job, name),
        media_type=_MEDIA[name],
        filename=name,
        headers={"Content-Security-Policy": _REPORT_CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/jobs", response_model=AuditJobList)
def list_jobs(caller: ReaderDep, jobs: AuditJobsDep) -> AuditJobList:
    """Every audit job with its state."""
    return AuditJobList(jobs=[AuditJobOut.of(j) for j in jobs.jobs()])


@router.get("/jobs/{job}", response_model=AuditJobOut)
def get_job(job: JobName, caller: ReaderDep, jobs: AuditJobsDep) -> AuditJobOut:
    """An audit job's state (running, succeeded, failed), exit code and log tail."""
    return AuditJobOut.of(jobs.get(job))


@router.post("/jobs", status_code=202, response_model=AuditJobOut)
def start_job(
    body: AuditJobCreate, caller: OperatorDep, jobs: AuditJobsDep, trail: TrailDep
) -> AuditJobOut:
    """Start ``fedembed audit`` on a run's or a registry version's adapter; follow its job."""
    request = AuditJobRequest(
        quick=body.quick, strict=body.strict, run=body.run, model_version=body.model_version
    )
    job = jobs.start(request, requested_by=caller.token_id)
    trail.record(
        caller,
        "audit.start",
        job.job,
        detail={k: v for k, v in job.request.items() if v is not None},
    )
    return AuditJobOut.of(job)
