"""The compliance report: canonical JSON with its SHA-256, an HTML page and a PDF.

:func:`write_report` turns the audit's results (the dict ``audit.run_audit`` returns)
into ``report.json``, ``report.json.sha256``, ``report.html`` and ``report.pdf``;
:func:`render_html` renders the page alone. One document model
(:mod:`report.document`) feeds both views (:mod:`report.html_view`,
:mod:`report.pdf_view`).

The names below load on first use (PEP 562): the writer pulls in Pillow and fpdf2,
which commands that write no report should not wait for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from report.compliance_report import (
        REQUIRED_KEYS,
        ReportError,
        ReportFiles,
        canonical_json,
        render_html,
        validate_results,
        write_report,
    )

_SUBMODULE: dict[str, str] = {
    "REQUIRED_KEYS": "compliance_report",
    "ReportError": "compliance_report",
    "ReportFiles": "compliance_report",
    "canonical_json": "compliance_report",
    "render_html": "compliance_report",
    "validate_results": "compliance_report",
    "write_report": "compliance_report",
}


__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "REQUIRED_KEYS",
    "ReportError",
    "ReportFiles",
    "canonical_json",
    "render_html",
    "validate_results",
    "write_report",
]
