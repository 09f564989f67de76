"""The compliance audit report: canonical JSON with its SHA-256, an HTML page and a PDF.

:func:`write_report` takes the audit ``results`` (the dict ``audit.run_audit`` produces,
see the audit results contract: subject, policy, attacks, evidence, checks, regulations,
figures, ...) and writes into ``out_dir``:

* ``report.json``: the results, canonically serialised (sorted keys, no whitespace,
  UTF-8, ``json_sha256`` set to ``null`` since a file cannot contain its own hash);
* ``report.json.sha256``: that file's SHA-256 in ``sha256sum`` format, so a reviewer
  checks it with ``sha256sum -c report.json.sha256``;
* ``report.html``: one self-contained page (inline CSS, ``data:`` figures, strict CSP,
  no scripts, no external URL) showing the verdict, the SHA-256 and eight sections;
* ``report.pdf``: the same sections, drawn with fpdf2's core fonts.

The HTML and the PDF are views; ``report.json`` is the record, and the SHA-256 printed in
both ties them to it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from PIL import Image, UnidentifiedImageError

from embedding_core.atomic_file import atomic_write_bytes
from embedding_core.errors import FedembedError
from report.document import (
    CHECK_STATUSES,
    CHECKSUM_NAME,
    JSON_NAME,
    REGULATION_STATUSES,
    build_document,
)
from report.html_view import render_document_html
from report.pdf_view import render_document_pdf

__all__ = [
    "REQUIRED_KEYS",
    "ReportError",
    "ReportFiles",
    "canonical_json",
    "render_html",
    "validate_results",
    "write_report",
]

logger = logging.getLogger(__name__)

REQUIRED_KEYS: Final = (
    "report_version",
    "title",
    "generated_at",
    "fedembed_version",
    "subject",
    "policy",
    "attacks",
    "checks",
    "regulations",
)
"""Top-level keys every results dict must have (the others may be absent or null)."""
HASH_KEY: Final = "json_sha256"
HTML_NAME: Final = "report.html"
PDF_NAME: Final = "report.pdf"
REPORT_FILE_MODE: Final = 0o644
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_MAPPING_KEYS: Final = ("subject", "policy")
_LIST_KEYS: Final = ("attacks", "checks", "regulations")
_OPTIONAL_LIST_KEYS: Final = ("privacy_budget", "bias", "utility", "figures", "limitations")
_FIX: Final = "produce the results with `fedembed audit` (audit.run_audit) or fix that field"


class ReportError(FedembedError):
    """The audit results cannot be written as a report (missing or malformed field)."""


@dataclass(frozen=True)
class ReportFiles:
    """The files :func:`write_report` wrote.

    Attributes:
        html: The self-contained HTML page.
        json: The canonical results JSON.
        pdf: The PDF report.
        json_sha256: SHA-256 (hex) of the bytes of ``json``.
        checksum: The ``sha256sum`` file for ``json``.
    """

    html: Path
    json: Path
    pdf: Path
    json_sha256: str
    checksum: Path


def canonical_json(results: Mapping[str, Any]) -> bytes:
    """The canonical UTF-8 JSON of ``results`` with ``json_sha256`` set to null.

    Raises:
        ReportError: When ``results`` holds something JSON cannot represent exactly
            (NaN, infinity, a non-string key, an object, a lone surrogate).
    """
    _check_json(results, "results")
    record = {**results, HASH_KEY: None}
    text = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def validate_results(results: Any) -> None:
    """Check that ``results`` has the shape the report needs.

    Raises:
        ReportError: Naming the first missing or malformed field.
    """
    if not isinstance(results, Mapping):
        raise ReportError(
            f"the audit results are a {type(results).__name__}, not a mapping",
            expected="a dict following the audit results contract",
            fix=_FIX,
        )
    missing = [key for key in REQUIRED_KEYS if key not in results]
    if missing:
        names = ", ".join(repr(key) for key in missing)
        raise ReportError(
            f"the audit results lack the required key(s) {names}",
            expected=f"all of {', '.join(REQUIRED_KEYS)}",
            fix=_FIX,
        )
    for key in _MAPPING_KEYS:
        _require(isinstance(results[key], Mapping), key, "a mapping (JSON object)")
    for key in _LIST_KEYS:
        _require_list(results[key], key, allow_none=False)
    for key in _OPTIONAL_LIST_KEYS:
        _require_list(results.get(key), key, allow_none=True)
    for key in ("evidence",):
        value = results.get(key)
        _require(value is None or isinstance(value, Mapping), key, "a mapping or null")
    for index, check in enumerate(results["checks"]):
        _require_status(check, f"checks[{index}]", CHECK_STATUSES)
    for index, regulation in enumerate(results["regulations"]):
        _require_status(regulation, f"regulations[{index}]", REGULATION_STATUSES)
    for index, figure in enumerate(results.get("figures") or ()):
        _check_figure(figure, f"figures[{index}]")
    _check_json(results, "results")


def render_html(results: Mapping[str, Any], *, json_sha256: str) -> str:
    """The self-contained HTML report of ``results`` whose JSON has SHA-256 ``json_sha256``.

    Raises:
        ReportError: When ``results`` is malformed (see :func:`validate_results`).
    """
    validate_results(results)
    return render_document_html(build_document(results, json_sha256=json_sha256))


def write_report(results: Mapping[str, Any], out_dir: Path) -> ReportFiles:
    """Write ``report.json``, its ``.sha256`` file, ``report.html`` and ``report.pdf``.

    Each file is replaced atomically; ``out_dir`` is created when missing.

    Args:
        results: The audit results (see the module docstring).
        out_dir: Directory to write into.

    Returns:
        The paths written and the SHA-256 of ``report.json``.

    Raises:
        ReportError: When ``results`` is malformed.
        StorageError: When a file cannot be written.
    """
    validate_results(results)
    data = canonical_json(results)
    digest = hashlib.sha256(data).hexdigest()
    document = build_document(results, json_sha256=digest)
    html_text = render_document_html(document)
    pdf_bytes = render_document_pdf(document)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        html=out_dir / HTML_NAME,
        json=out_dir / JSON_NAME,
        pdf=out_dir / PDF_NAME,
        json_sha256=digest,
        checksum=out_dir / CHECKSUM_NAME,
    )
    atomic_write_bytes(files.json, data, mode=REPORT_FILE_MODE)
    checksum_line = f"{digest}  {JSON_NAME}\n".encode("ascii")
    atomic_write_bytes(files.checksum, checksum_line, mode=REPORT_FILE_MODE)
    atomic_write_bytes(files.html, html_text.encode("utf-8"), mode=REPORT_FILE_MODE)
    atomic_write_bytes(files.pdf, pdf_bytes, mode=REPORT_FILE_MODE)
    logger.info("compliance report written to %s (report.json sha256 %s)", out_dir, digest)
    return files


def _malformed(field: str, expected: str) -> ReportError:
    return ReportError(
        f"the audit results field {field!r} is malformed", expected=expected, fix=_FIX
    )


def _require(condition: bool, field: str, expected: str) -> None:
    if not condition:
        raise _malformed(field, expected)


def _require_list(value: Any, field: str, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    is_list = isinstance(value, Sequence) and not isinstance(value, str | bytes)
    expected = "a list" + (" or null" if allow_none else "")
    _require(is_list, field, expected)
    for index, item in enumerate(value):
        if field != "limitations":
            _require(isinstance(item, Mapping), f"{field}[{index}]", "a mapping (JSON object)")


def _require_status(item: Mapping[str, Any], field: str, allowed: frozenset[str]) -> None:
    status = item.get("status")
    if status not in allowed:
        raise ReportError(
            f"the audit results field {field!r} has status {status!r}",
            expected=f"a status in {sorted(allowed)}",
            fix=_FIX,
        )


def _check_figure(figure: Mapping[str, Any], field: str) -> None:
    encoded = figure.get("png_base64")
    if not isinstance(encoded, str):
        raise _malformed(f"{field}.png_base64", "a base64-encoded PNG string")
    try:
        png = base64.b64decode(encoded, validate=True)
        if not png.startswith(PNG_SIGNATURE):
            raise ValueError("no PNG signature")
        with Image.open(io.BytesIO(png)) as image:
            image.verify()
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError) as exc:
        raise ReportError(
            f"the audit results field '{field}.png_base64' is not a valid PNG ({exc})",
            expected="a PNG image encoded with standard base64",
            fix="save the figure with savefig(format='png') and encode it with base64.b64encode",
        ) from exc


def _check_json(value: Any, path: str) -> None:
    """Raise :class:`ReportError` naming the first value in ``value`` JSON cannot hold."""
    problem = None
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            problem = f"the non-finite number {value!r}"
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problem = "a string that is not valid Unicode (lone surrogate)"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                problem = f"the non-string key {key!r}"
                break
            _check_json(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
    else:
        problem = f"a {type(value).__name__}"
    if problem is not None:
        raise ReportError(
            f"{path} holds {problem}, which JSON cannot represent exactly",
            expected="only null, booleans, finite numbers, strings, lists and string-keyed objects",
            fix="convert it (numpy scalars with .item(), NaN or infinity to null) before writing",
        )
