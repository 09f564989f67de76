"""The compliance report as a neutral document: sections of paragraphs, tables and figures.

:func:`build_document` turns validated audit ``results`` (see the audit results contract
in :mod:`report.compliance_report`) into a :class:`ReportDocument` that the HTML and PDF
renderers both draw, so the two formats always show the same sections, rows and numbers.
Every string here is plain text taken from the results as it is: the renderers escape
(HTML) or transliterate (PDF) it.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CHECK_STATUSES",
    "REGULATION_STATUSES",
    "STATUS_LABELS",
    "VERIFY_COMMAND",
    "Block",
    "BulletList",
    "Figure",
    "Heading",
    "Paragraph",
    "ReportDocument",
    "Section",
    "Table",
    "build_document",
    "format_value",
    "overall_verdict",
]

VERDICT_PASS: Final = "PASS"
VERDICT_FAIL: Final = "FAIL"
VERDICT_INCOMPLETE: Final = "INCOMPLETE"
STATUS_PASS: Final = "pass"
STATUS_FAIL: Final = "fail"
STATUS_PARTIAL: Final = "partial"
STATUS_NOT_EVALUATED: Final = "not_evaluated"
CHECK_STATUSES: Final = frozenset({STATUS_PASS, STATUS_FAIL, STATUS_NOT_EVALUATED})
REGULATION_STATUSES: Final = CHECK_STATUSES | {STATUS_PARTIAL}
STATUS_LABELS: Final[Mapping[str, str]] = {
    STATUS_PASS: "PASS",
    STATUS_FAIL: "FAIL",
    STATUS_PARTIAL: "PARTIAL",
    STATUS_NOT_EVALUATED: "NOT EVALUATED",
}
JSON_NAME: Final = "report.json"
CHECKSUM_NAME: Final = "report.json.sha256"
VERIFY_COMMAND: Final = f"sha256sum -c {CHECKSUM_NAME}"
DISCLAIMER: Final = (
    "This mapping is engineering evidence, not legal advice: it records which technical "
    "controls were measured and how; whether they satisfy a regulation is for the data "
    "controller and its counsel to decide."
)
MISSING: Final = "\u2014"  # em dash: a value that is absent (null) in the results
NOT_RUN: Final = "not run"
MAX_METRICS_SHOWN: Final = 10
MAX_DETAIL_CHARS: Final = 240
MAX_DETAILS_CHARS: Final = 900
_SMALL: Final = 1e-3
_LARGE: Final = 1e6


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    text: str


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text; ``code`` paragraphs are shown in a monospaced font."""

    text: str
    code: bool = False


@dataclass(frozen=True)
class BulletList:
    """An unordered list of plain-text items."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells.

    Attributes:
        caption: What the table shows (HTML ``<caption>``, PDF line above the table).
        headers: Column headers.
        rows: Cells, one tuple per row, as wide as ``headers``.
        widths: Relative column widths (summing to about 1), for the PDF.
        status_column: Index of the column whose cells are status keys (``"pass"``,
            ``"fail"``, ...), drawn as coloured badges; ``None`` when there is none.
    """

    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    widths: tuple[float, ...]
    status_column: int | None = None


@dataclass(frozen=True)
class Figure:
    """A PNG figure with its title, caption and alternative text."""

    title: str
    caption: str
    png: bytes
    alt: str


Block = Heading | Paragraph | BulletList | Table | Figure


@dataclass(frozen=True)
class Section:
    """A numbered section of the report."""

    number: int
    title: str
    anchor: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class ReportDocument:
    """Everything the renderers draw: the header fields and the numbered sections."""

    title: str
    generated_at: str
    fedembed_version: str
    report_version: str
    verdict: str
    verdict_summary: str
    json_sha256: str
    verify_text: str
    sections: tuple[Section, ...]


def format_value(value: Any) -> str:
    """A number, flag or string from the results as short text for a table cell."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value != 0.0 and not _SMALL <= abs(value) < _LARGE:
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return _shorten(json.dumps(value, ensure_ascii=False, default=str), MAX_DETAIL_CHARS)


def overall_verdict(checks: Iterable[Mapping[str, Any]]) -> str:
    """``FAIL`` if any check failed, ``PASS`` if all of at least one passed, else ``INCOMPLETE``."""
    statuses = [check.get("status") for check in checks]
    if STATUS_FAIL in statuses:
        return VERDICT_FAIL
    if statuses and all(status == STATUS_PASS for status in statuses):
        return VERDICT_PASS
    return VERDICT_INCOMPLETE


def build_document(results: Mapping[str, Any], *, json_sha256: str) -> ReportDocument:
    """The report for validated ``results`` whose JSON has SHA-256 ``json_sha256``."""
    checks = _mappings(results.get("checks"))
    counts = {status: sum(c.get("status") == status for c in checks) for status in CHECK_STATUSES}
    summary = (
        f"{counts[STATUS_PASS]} passed, {counts[STATUS_FAIL]} failed, "
        f"{counts[STATUS_NOT_EVALUATED]} not evaluated, of {len(checks)} policy checks"
    )
    verify = (
        f"To verify the machine-readable results, run `{VERIFY_COMMAND}` in the folder that "
        f"holds {JSON_NAME}: it must print '{JSON_NAME}: OK'. Any change to {JSON_NAME} "
        "changes this SHA-256."
    )
    builders = (
        ("Scope", "scope", _scope),
        ("Summary of policy checks", "summary", _summary),
        ("Threat models and method", "method", _method),
        ("Results", "results", _results),
        ("Bias audit", "bias", _bias),
        ("Privacy budget per node", "privacy-budget", _privacy_budget),
        ("Regulatory mapping", "regulations", _regulations),
        ("Limitations", "limitations", _limitations),
    )
    sections = tuple(
        Section(number, title, anchor, tuple(build(results)))
        for number, (title, anchor, build) in enumerate(builders, start=1)
    )
    return ReportDocument(
        title=str(results.get("title", "")),
        generated_at=format_value(results.get("generated_at")),
        fedembed_version=format_value(results.get("fedembed_version")),
        report_version=format_value(results.get("report_version")),
        verdict=overall_verdict(checks),
        verdict_summary=summary,
        json_sha256=json_sha256,
        verify_text=verify,
        sections=sections,
    )


def _scope(results: Mapping[str, Any]) -> list[Block]:
    subject = _mapping(results.get("subject"))
    model = _mapping(subject.get("model"))
    blocks: list[Block] = [Heading("Subject")]
    rows = _kv_rows(model, ("id", "fingerprint"), prefix="model ")
    adapter = subject.get("adapter")
    if isinstance(adapter, Mapping):
        order = ("path", "sha256", "epsilon", "delta", "rounds")
        rows += _kv_rows(adapter, order, prefix="adapter ")
    else:
        rows.append(("adapter", "none: the base model was audited without an adapter"))
    blocks.append(Table("Model and adapter", ("Item", "Value"), tuple(rows), (0.25, 0.75)))
    index = subject.get("index")
    if isinstance(index, Mapping):
        blocks.append(Paragraph(f"Index: {format_value(index.get('path'))}"))
        headers = ("Collection", "Protection", "Beta", "Vectors")
        keys = ("name", "protection", "beta", "count")
        blocks.append(_records_table("Index collections", headers, keys, index.get("collections")))
    else:
        blocks.append(Paragraph("No vector index was audited."))
    data_keys = ("name", "sha256", "records")
    blocks.append(
        _records_table("Data sets", ("Name", "SHA-256", "Records"), data_keys, subject.get("data"))
    )
    policy = _mapping(results.get("policy"))
    blocks.append(Heading("Policy"))
    policy_rows = _kv_rows(policy, ("name", "version", "path", "sha256"), skip=("thresholds",))
    blocks.append(Table("Policy", ("Item", "Value"), tuple(policy_rows), (0.25, 0.75)))
    thresholds = _kv_rows(_mapping(policy.get("thresholds")), ())
    blocks.append(Table("Policy thresholds", ("Threshold", "Value"), tuple(thresholds), (0.6, 0.4)))
    return blocks


def _summary(results: Mapping[str, Any]) -> list[Block]:
    rows = tuple(
        (
            str(check.get("status", "")),
            f"{format_value(check.get('title'))} ({format_value(check.get('id'))})",
            format_value(check.get("metric")),
            format_value(check.get("value")),
            f"{format_value(check.get('comparison'))} {format_value(check.get('threshold'))}",
            format_value(check.get("explanation")),
        )
        for check in _mappings(results.get("checks"))
    )
    if not rows:
        return [Paragraph("The policy defined no checks, so nothing was evaluated.")]
    headers = ("Status", "Check", "Metric", "Value", "Threshold", "Explanation")
    widths = (0.13, 0.17, 0.17, 0.09, 0.1, 0.34)
    return [Table("Policy checks", headers, rows, widths, status_column=0)]


def _method(results: Mapping[str, Any]) -> list[Block]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for report in _mappings(results.get("attacks")):
        groups.setdefault(format_value(report.get("attack")), []).append(report)
    if not groups:
        return [Paragraph("No attack was run.")]
    blocks: list[Block] = []
    for attack, reports in groups.items():
        blocks.append(Heading(attack))
        threat_models = dict.fromkeys(format_value(r.get("threat_model")) for r in reports)
        blocks.extend(Paragraph(f"Threat model: {text}") for text in threat_models)
        rows = tuple((format_value(r.get("target")), _details(r.get("details"))) for r in reports)
        blocks.append(Table(f"{attack}: targets", ("Target", "Details"), rows, (0.3, 0.7)))
    return blocks


def _results(results: Mapping[str, Any]) -> list[Block]:
    rows = tuple(
        (
            format_value(report.get("attack")),
            format_value(report.get("target")),
            _metrics(report.get("metrics")),
            format_value(report.get("seconds")),
        )
        for report in _mappings(results.get("attacks"))
    )
    headers = ("Attack", "Target", "Key metrics", "Seconds")
    blocks: list[Block] = [Table("Attack reports", headers, rows, (0.2, 0.22, 0.48, 0.1))]
    evidence = _mapping(results.get("evidence"))
    if evidence:
        evidence_rows = tuple(
            (str(key), NOT_RUN if value is None else format_value(value))
            for key, value in evidence.items()
        )
        blocks.append(
            Table("Evidence the checks use", ("Measure", "Value"), evidence_rows, (0.6, 0.4))
        )
    utility = _mappings(results.get("utility"))
    if utility:
        keys = list(dict.fromkeys(key for row in utility for key in row))
        columns = tuple(key.replace("_", " ") for key in keys)
        blocks.append(_records_table("Privacy-utility trade-off", columns, keys, utility))
    else:
        blocks.append(Paragraph("No privacy-utility measurement was provided."))
    for number, figure in enumerate(_mappings(results.get("figures")), start=1):
        title = format_value(figure.get("title", figure.get("name")))
        caption = format_value(figure.get("caption", ""))
        png = base64.b64decode(str(figure.get("png_base64", "")), validate=True)
        alt = f"Figure {number}: {title}. {caption}".strip()
        blocks.append(Figure(f"Figure {number}: {title}", caption, png, alt))
    return blocks


BIAS_CONVENTION = (
    "Effect sizes d are shown with both standard-deviation conventions: the sample one "
    "(ddof=1), the SEAT reference code's and the one the policy judges, and the population "
    "one (ddof=0), the original WEAT code's, with which they equal the peer library WEFE's "
    "WEAT effect sizes on the same embeddings (checked in the test suite). Permutation "
    "p-values are two-sided (a reversed association counts as much as the expected one), "
    "exact when the partitions can be counted (up to 21 vs 21 targets) and Monte Carlo "
    "otherwise, Holm-Bonferroni adjusted across the tests shown. Smallest p is the smallest "
    "p-value a test can reach at its sizes: a test marked underpowered cannot be "
    "significant in this family and shows neither bias nor its absence. GloVe references "
    "are Caliskan et al. (Science 2017), Table 1."
)


def _bias(results: Mapping[str, Any]) -> list[Block]:
    bias = _mappings(results.get("bias"))
    if not bias:
        return [Paragraph("No bias audit was run.")]
    headers = (
        "Test",
        "d (sample sd)",
        "d (population sd, WEFE)",
        "Holm p (two-sided)",
        "Smallest p",
        "Power",
        "GloVe reference",
        "Adapter d (sample sd)",
    )
    keys = (
        "test",
        "effect_size",
        "effect_size_population",
        "holm_p",
        "p_min",
        "power",
        "glove_reference",
        "adapter_effect_size",
    )
    return [
        Paragraph(BIAS_CONVENTION),
        _records_table("WEAT/SEAT bias tests", headers, keys, bias),
    ]


def _privacy_budget(results: Mapping[str, Any]) -> list[Block]:
    ledger = _mappings(results.get("privacy_budget"))
    if not ledger:
        return [Paragraph("No federation ledger was provided.")]
    headers = ("Node", "Epsilon", "Delta", "Rounds", "Refused")
    keys = ("node", "epsilon", "delta", "rounds", "refused")
    return [_records_table("Privacy budget spent per node", headers, keys, ledger)]


def _regulations(results: Mapping[str, Any]) -> list[Block]:
    rows = []
    for regulation in _mappings(results.get("regulations")):
        how = format_value(regulation.get("how_addressed"))
        checks = regulation.get("checks")
        if isinstance(checks, Sequence) and not isinstance(checks, str) and checks:
            how = f"{how} (checks: {', '.join(format_value(c) for c in checks)})"
        rows.append(
            (
                format_value(regulation.get("framework")),
                format_value(regulation.get("article")),
                format_value(regulation.get("title")),
                format_value(regulation.get("requirement")),
                how,
                str(regulation.get("status", "")),
            )
        )
    blocks: list[Block] = [Paragraph(DISCLAIMER)]
    if rows:
        headers = ("Framework", "Article", "Title", "Requirement", "How addressed", "Status")
        widths = (0.1, 0.09, 0.15, 0.25, 0.28, 0.13)
        blocks.append(Table("Regulatory mapping", headers, tuple(rows), widths, status_column=5))
    else:
        blocks.append(Paragraph("The policy mapped no regulation."))
    return blocks


def _limitations(results: Mapping[str, Any]) -> list[Block]:
    items = results.get("limitations")
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        return [Paragraph("No limitations were recorded.")]
    return [BulletList(tuple(format_value(item) for item in items))]


def _records_table(
    caption: str, headers: Sequence[str], keys: Sequence[str], records: Any
) -> Table:
    rows = tuple(
        tuple(format_value(record.get(key)) for key in keys) for record in _mappings(records)
    )
    widths = tuple(1.0 / len(keys) for _ in keys)
    return Table(caption, tuple(headers), rows, widths)


def _kv_rows(
    mapping: Mapping[str, Any], order: Sequence[str], *, prefix: str = "", skip: Sequence[str] = ()
) -> list[tuple[str, str]]:
    keys = [key for key in order if key in mapping]
    keys += [key for key in mapping if key not in order and key not in skip]
    return [(f"{prefix}{key}", format_value(mapping[key])) for key in keys]


def _metrics(metrics: Any) -> str:
    items = list(_mapping(metrics).items())
    text = ", ".join(f"{key}={format_value(value)}" for key, value in items[:MAX_METRICS_SHOWN])
    hidden = len(items) - MAX_METRICS_SHOWN
    return f"{text}, ... (+{hidden} more in {JSON_NAME})" if hidden > 0 else text or MISSING


def _details(details: Any) -> str:
    parts = [f"{key}: {format_value(value)}" for key, value in _mapping(details).items()]
    return _shorten("; ".join(parts), MAX_DETAILS_CHARS) or MISSING


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [item for item in value if isinstance(item, Mapping)]
