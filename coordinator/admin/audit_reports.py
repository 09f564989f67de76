"""Audit reports in ``<home>/audit/<job>/``: list them with their SHA-256, verify them.

``fedembed audit`` writes ``report.json`` (the record), ``report.json.sha256`` (its
SHA-256 in ``sha256sum`` format: the audit's own record, checked by ``sha256sum -c``),
and two views that print that SHA-256: ``report.html`` and ``report.pdf``. An audit job
of the admin API also records the views' SHA-256 in ``views.sha256`` when the audit
succeeds (:func:`record_views`), so a view changed afterwards is detected too.

:meth:`AuditReports.verify` answers, per file: ``ok`` (its SHA-256 is the recorded one),
``mismatch`` (it changed since), ``missing`` (the file is gone) or ``unrecorded`` (no
record to check it against: a view of a report written on the command line), and
whether the HTML names the recorded SHA-256 of the JSON. The report is ``ok`` when the
JSON's record exists and nothing is missing or mismatched.

The names here are the report writer's (``report/``, a floor above the admin API, which
does not import it).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from coordinator.admin.errors import AdminNotFoundError
from embedding_core.atomic_file import atomic_write_bytes
from index_client.names import NAME_RE

__all__ = [
    "CHECKSUM_FILE",
    "HTML_FILE",
    "JSON_FILE",
    "PDF_FILE",
    "REPORT_FILES",
    "VIEWS_FILE",
    "AuditReports",
    "CheckStatus",
    "FileCheck",
    "ReportFile",
    "ReportSummary",
    "ReportVerification",
    "file_sha256",
    "read_sums",
    "record_views",
]

logger = logging.getLogger(__name__)

JSON_FILE = "report.json"
CHECKSUM_FILE = "report.json.sha256"
HTML_FILE = "report.html"
PDF_FILE = "report.pdf"
REPORT_FILES = (JSON_FILE, HTML_FILE, PDF_FILE)
VIEWS_FILE = "views.sha256"
CheckStatus = Literal["ok", "mismatch", "missing", "unrecorded"]
_SUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](\S+)")
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_sums(path: Path) -> dict[str, str]:
    """The ``name -> sha256`` lines of a ``sha256sum`` file (empty when it is absent)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return {}
    sums: dict[str, str] = {}
    for line in text.splitlines():
        match = _SUM_LINE.fullmatch(line.strip())
        if match:
            sums[match.group(2)] = match.group(1)
    return sums


def record_views(folder: Path) -> None:
    """Record the SHA-256 of the report's views in ``views.sha256`` (``sha256sum`` format)."""
    lines = [
        f"{file_sha256(folder / name)}  {name}\n"
        for name in (HTML_FILE, PDF_FILE)
        if (folder / name).is_file()
    ]
    atomic_write_bytes(folder / VIEWS_FILE, "".join(lines).encode("ascii"), mode=0o644)


@dataclass(frozen=True)
class ReportFile:
    """One file of a report: its size and SHA-256 now."""

    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ReportSummary:
    """A report folder: its files and the SHA-256 the audit recorded for its JSON."""

    job: str
    modified: str
    json_sha256: str | None
    files: tuple[ReportFile, ...]


@dataclass(frozen=True)
class FileCheck:
    """One file checked against its record."""

    name: str
    status: CheckStatus
    recorded_sha256: str | None
    sha256: str | None


@dataclass(frozen=True)
class ReportVerification:
    """A report's files checked against the recorded SHA-256."""

    job: str
    ok: bool
    files: tuple[FileCheck, ...]
    html_names_json_sha256: bool


def _modified(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")


class AuditReports:
    """The reports under one audit folder (``<home>/audit``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, job: str) -> Path:
        """The folder of report ``job`` (404 when there is none).

        Raises:
            AdminNotFoundError: When ``job`` is not a name or holds no report.json.
        """
        folder = self.root / job
        if not NAME_RE.fullmatch(job) or not (folder / JSON_FILE).is_file():
            raise AdminNotFoundError(
                f"no audit report {job!r}",
                expected="a job listed by GET /v1/audit/reports",
                fix="list the reports and use one's job name (a job's report appears "
                "when it has succeeded)",
            )
        return folder

    def _folders(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if NAME_RE.fullmatch(folder.name) and (folder / JSON_FILE).is_file():
                yield folder

    def summary(self, job: str) -> ReportSummary:
        """Report ``job``: each file's size and SHA-256, and the recorded JSON SHA-256."""
        folder = self.folder(job)
        files = tuple(
            ReportFile(name, (folder / name).stat().st_size, file_sha256(folder / name))
            for name in REPORT_FILES
            if (folder / name).is_file()
        )
        recorded = read_sums(folder / CHECKSUM_FILE).get(JSON_FILE)
        return ReportSummary(job, _modified(folder / JSON_FILE), recorded, files)

    def summaries(self) -> list[ReportSummary]:
        """Every report under the audit folder, by job name."""
        return [self.summary(folder.name) for folder in self._folders()]

    def file(self, job: str, name: str) -> Path:
        """The path of one report file (404 when absent).

        Raises:
            AdminNotFoundError: When the report or the file does not exist.
        """
        path = self.folder(job) / name
        if name not in REPORT_FILES or not path.is_file():
            raise AdminNotFoundError(
                f"report {job!r} has no file {name!r}",
                expected="one of " + ", ".join(REPORT_FILES),
                fix=f"list the report's files with GET /v1/audit/reports/{job}",
            )
        return path

    def verify(self, job: str) -> ReportVerification:
        """Each file of report ``job`` against the recorded SHA-256."""
        folder = self.folder(job)
        recorded = {
            **read_sums(folder / VIEWS_FILE),
            JSON_FILE: read_sums(folder / CHECKSUM_FILE).get(JSON_FILE),
        }
        checks = []
        for name in REPORT_FILES:
            expected = recorded.get(name)
            path = folder / name
            actual = file_sha256(path) if path.is_file() else None
            status: CheckStatus
            if actual is None:
                status = "missing"
            elif expected is None:
                status = "unrecorded"
            else:
                status = "ok" if actual == expected else "mismatch"
            checks.append(FileCheck(name, status, expected, actual))
        json_record = recorded[JSON_FILE]
        names_it = json_record is not None and _mentions(folder / HTML_FILE, json_record)
        ok = json_record is not None and all(c.status in ("ok", "unrecorded") for c in checks)
        if not ok:
            logger.warning("audit report %s does not verify", job)
        return ReportVerification(job, ok, tuple(checks), names_it)


def _mentions(path: Path, text: str) -> bool:
    try:
        return text.encode("ascii") in path.read_bytes()
    except FileNotFoundError:
        return False
