"""The console's release pages: budgets, models, partners, audit reports, and the overview.

Each function turns what a domain service answered (:class:`~coordinator.admin.budgets.
Budgets`, :class:`~coordinator.admin.model_registry.ModelRegistry`, the gateway's partner
keys, :class:`~coordinator.admin.audit_reports.AuditReports` and the audit jobs) into a
page; a service that could not answer (no gateway configured ...) becomes a notice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coordinator.admin.audit_jobs import AuditJob
from coordinator.admin.audit_reports import ReportSummary, ReportVerification
from coordinator.admin.budgets import MemberBudget
from coordinator.admin.console.cells import (
    NOTHING,
    digest,
    epsilon,
    flag,
    names,
    run_link,
    state,
    when,
)
from coordinator.admin.console.layout import (
    Fetched,
    Viewer,
    facts,
    page,
    problem_notice,
    table,
)
from coordinator.admin.console.markup import Html, join, tag
from index_client.answers import ApiKey

__all__ = [
    "AuditView",
    "BudgetView",
    "audit_page",
    "budgets_page",
    "models_page",
    "partners_page",
]


@dataclass(frozen=True)
class BudgetView:
    """The budgets page's data: each member's spending and the policy's bound."""

    members: Sequence[MemberBudget]
    max_epsilon: float
    policy_path: str


@dataclass(frozen=True)
class AuditView:
    """The audit page's data: each report with its verification, and the jobs."""

    reports: Sequence[tuple[ReportSummary, ReportVerification]]
    jobs: Sequence[AuditJob]


def _share(value: float, cap: float) -> Html:
    if cap <= 0:
        return epsilon(value)
    return join(
        [
            tag("progress", f"{value:.2f}/{cap:.2f}", value=min(value, cap), max=cap),
            tag("span", f" {value:.2f} of {cap:.2f}", class_="count"),
        ]
    )


def budgets_page(budgets: Fetched[BudgetView], *, viewer: Viewer) -> Html:
    """Each member's epsilon per run and in all, against the policy, with its flag."""
    parts: list[Html | None] = [problem_notice(budgets, what="The budgets are unavailable")]
    view = budgets.value
    if view is not None:
        parts.append(
            tag(
                "section",
                facts(
                    [
                        ("Budget per member (max_epsilon_per_node)", epsilon(view.max_epsilon)),
                        ("Policy", tag("code", view.policy_path)),
                        ("Flags", "near: from 80% of the budget; over: beyond it"),
                    ],
                    facts_id="policy",
                ),
                class_="panel",
            )
        )
        totals = [
            (
                tag("strong", m.member),
                _share(m.epsilon, m.max_epsilon),
                epsilon(max(0.0, m.max_epsilon - m.epsilon)),
                state(m.status),
                str(len(m.runs)),
            )
            for m in view.members
        ]
        parts.append(
            table(
                ("Member", "Epsilon in all", "Remaining", "Flag", "Runs"),
                totals,
                empty="No member has taken part in a run yet.",
                table_id="budgets",
            )
        )
        per_run = [
            (
                m.member,
                run_link(r.run),
                epsilon(r.run_epsilon),
                epsilon(r.epsilon_total),
                str(r.rounds),
                str(r.refusals),
            )
            for m in view.members
            for r in m.runs
        ]
        parts += [
            tag("h2", "Per run"),
            table(
                (
                    "Member",
                    "Run",
                    "Epsilon of the run",
                    "Ledger total at its end",
                    "Rounds answered",
                    "Refusals",
                ),
                per_run,
                empty="No run recorded a member.",
                table_id="budgets-per-run",
            ),
        ]
    return page("Budgets", join(parts), viewer=viewer, active="budgets")


def _observers(per_observer: Mapping[str, Any]) -> Html:
    items = []
    for observer, levels in sorted(per_observer.items()):
        shown = ", ".join(
            f"{level.replace('_', '-')} {value:.2f}"
            for level, value in sorted((levels or {}).items())
            if isinstance(value, int | float)
        )
        items.append(tag("li", tag("strong", observer), ": ", shown or "—"))
    return tag("ul", join(items), class_="observers") if items else NOTHING


def _files(files: Mapping[str, Any]) -> Html:
    if not files:
        return NOTHING
    return tag(
        "ul",
        join(tag("li", name, " ", digest(value)) for name, value in sorted(files.items())),
        class_="files",
    )


def _base_name(base: Mapping[str, Any]) -> str:
    return str(base.get("id") or base.get("model_id") or base.get("name") or "")


def models_page(models: Fetched[list[dict[str, Any]]], *, viewer: Viewer) -> Html:
    """Every registered version: its manifest, whether it is intact and which one is live."""
    parts: list[Html | None] = [problem_notice(models, what="The model registry is unavailable")]
    versions = models.value or []
    live = next((v for v in versions if v.get("live")), None)
    parts.append(
        tag(
            "section",
            facts(
                [
                    (
                        "Live on the query gateway",
                        f"version {live.get('version')} (run {live.get('run')})"
                        if live
                        else "no version promoted yet",
                    ),
                    ("Versions", str(len(versions))),
                ],
                facts_id="live-model",
            ),
            class_="panel",
        )
    )
    rows = []
    for version in versions:
        base: Mapping[str, Any] = version.get("base_model") or {}
        adapter: Mapping[str, Any] = version.get("adapter") or {}
        eps: Mapping[str, Any] = version.get("epsilon") or {}
        rows.append(
            (
                tag("strong", str(version.get("version", ""))),
                state("live") if version.get("live") else NOTHING,
                flag(version.get("intact"), yes="intact", no="damaged"),
                run_link(version.get("run")),
                when(version.get("created")),
                join([_base_name(base), " ", digest(base.get("fingerprint"))]),
                " ".join(str(adapter.get(k)) for k in ("kind", "side", "rank") if adapter.get(k)),
                _observers(eps.get("per_observer") or {}),
                _files(version.get("files") or {}),
            )
        )
    parts.append(
        table(
            (
                "Version",
                "Live",
                "SHA-256",
                "Run",
                "Registered",
                "Base model",
                "Adapter",
                "Epsilon per observer",
                "Files",
            ),
            rows,
            empty="No model version is registered yet (POST /v1/models/register).",
            table_id="models",
        )
    )
    return page("Models", join(parts), viewer=viewer, active="models")


def _key_state(key: ApiKey) -> Html:
    if key.revoked_at:
        return state("revoked")
    if key.suspended_at:
        return state("suspended")
    return state("active")


def partners_page(partners: Fetched[Sequence[ApiKey]], *, viewer: Viewer) -> Html:
    """The gateway's partner keys: scope, limits, score release, state."""
    parts: list[Html | None] = [
        problem_notice(partners, what="The query gateway's partner keys are unavailable")
    ]
    rows = [
        (
            tag("strong", key.name),
            tag("code", key.key_id),
            _key_state(key),
            names(key.scopes),
            str(key.top_k_cap),
            f"{key.rate_per_minute}/min (burst {key.burst})",
            f"{key.query_budget} per {key.budget_window_s} s",
            key.score_release,
            "yes" if key.vector_queries else "no",
            when(key.created_at),
            when(key.revoked_at),
        )
        for key in partners.value or []
    ]
    if partners.value is not None or not rows:
        parts.append(
            table(
                (
                    "Partner",
                    "Key id",
                    "State",
                    "Collections",
                    "Top-k cap",
                    "Rate",
                    "Query budget",
                    "Scores",
                    "Vectors",
                    "Created",
                    "Revoked",
                ),
                rows,
                empty="No partner key."
                if partners.value is not None
                else "Partner keys are kept by the query gateway.",
                table_id="partners",
            )
        )
    return page("Partners", join(parts), viewer=viewer, active="partners")


def _checks(verification: ReportVerification) -> Html:
    return tag(
        "ul",
        join(
            tag("li", check.name, " ", state(check.status), " ", digest(check.sha256))
            for check in verification.files
        ),
        class_="checks",
    )


def audit_page(audit: Fetched[AuditView], *, viewer: Viewer) -> Html:
    """Audit reports with their SHA-256 verification, and the audit jobs."""
    parts: list[Html | None] = [problem_notice(audit, what="The audit reports are unavailable")]
    view = audit.value
    if view is not None:
        rows = [
            (
                tag("strong", summary.job),
                when(summary.modified),
                flag(verification.ok, yes="verified", no="mismatch"),
                digest(summary.json_sha256, length=24),
                flag(verification.html_names_json_sha256, yes="yes", no="no"),
                _checks(verification),
            )
            for summary, verification in view.reports
        ]
        parts.append(
            table(
                (
                    "Report",
                    "Written",
                    "SHA-256 check",
                    "report.json SHA-256 (recorded)",
                    "HTML names it",
                    "Files",
                ),
                rows,
                empty="No audit report yet (POST /v1/audit/jobs starts an audit).",
                table_id="reports",
            )
        )
        jobs = [
            (
                tag("strong", job.job),
                state(job.state.value),
                when(job.created),
                when(job.finished),
                job.requested_by,
                names(job.failed_checks),
            )
            for job in view.jobs
        ]
        parts += [
            tag("h2", "Audit jobs"),
            table(
                ("Job", "State", "Started", "Finished", "Requested by", "Failed checks"),
                jobs,
                empty="No audit job has been started through the admin API.",
                table_id="audit-jobs",
            ),
        ]
    return page("Audit reports", join(parts), viewer=viewer, active="audit")
