"""The console's federation pages: nodes, runs and one run with its per-round plot.

Each function turns what a domain service answered (:class:`~coordinator.admin.members.
Roster`, the run views of :class:`~coordinator.admin.runs.RunManager`) into a page; a
service that could not answer becomes a notice, never an error page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coordinator.admin.console.cells import (
    NOTHING,
    digest,
    epsilon,
    flag,
    metric,
    names,
    progress,
    run_link,
    state,
    when,
)
from coordinator.admin.console.layout import (
    Fetched,
    Viewer,
    facts,
    notice,
    page,
    problem_notice,
    table,
)
from coordinator.admin.console.markup import Html, join, tag
from coordinator.admin.console.svg_plot import line_plot
from coordinator.admin.members import MemberView, Roster

__all__ = ["PLOT_METRIC", "nodes_page", "round_points", "run_page", "runs_page"]

PLOT_METRIC = "ndcg@10"
"""The central metric a run's page plots per round (the coordinator's evaluation)."""


def _online(member: MemberView) -> Html:
    if member.state == "revoked":
        return NOTHING
    return flag(member.online, yes="online", no="offline")


def nodes_table(members: Sequence[MemberView]) -> Html:
    """Members by kit name: state, Flower node id, online state, last seen."""
    rows = [
        (
            tag("strong", member.name),
            state(member.state),
            NOTHING if member.flower_node_id is None else str(member.flower_node_id),
            state(member.superlink) if member.superlink else NOTHING,
            _online(member),
            when(member.last_seen),
            when(member.enrolled_at),
            when(member.revoked_at),
            digest(member.fingerprint, length=20),
        )
        for member in members
    ]
    headers = (
        "Member",
        "State",
        "Flower node id",
        "SuperLink",
        "Online",
        "Last seen",
        "Enrolled",
        "Revoked",
        "Key fingerprint",
    )
    return table(headers, rows, empty="No member is enrolled yet.", table_id="members")


def nodes_page(roster: Fetched[Roster], *, viewer: Viewer) -> Html:
    """The nodes page: every member, and SuperNodes that belong to no member."""
    parts: list[Html | None] = [problem_notice(roster, what="The member roster is unavailable")]
    found = roster.value
    if found is not None:
        if not found.superlink_reachable:
            parts.append(
                notice(
                    "The SuperLink's Control API did not answer: node ids are those recorded "
                    "at enrolment; online state and last seen are unknown.",
                    fix="start the SuperLink (`fedembed coordinator superlink`) and reload.",
                    kind="muted",
                )
            )
        parts.append(nodes_table(found.members))
        if found.unmatched_nodes:
            rows = [
                (str(n.node_id), n.owner or NOTHING, state(n.status), when(n.online_at))
                for n in found.unmatched_nodes
            ]
            parts += [
                tag("h2", "SuperNodes of no member"),
                table(
                    ("Flower node id", "Registered as", "Status", "Online since"),
                    rows,
                    empty="",
                    table_id="unmatched-nodes",
                ),
            ]
    return page("Nodes", join(parts), viewer=viewer, active="nodes")


def round_points(run: Mapping[str, Any], key: str = PLOT_METRIC) -> list[tuple[float, float]]:
    """``(round, value)`` of ``key`` in a run's view: round 0 (before training) first."""
    progress_view: Mapping[str, Any] = run.get("progress") or {}
    points: list[tuple[float, float]] = []
    initial = (progress_view.get("initial_metrics") or {}).get(key)
    if isinstance(initial, int | float) and not isinstance(initial, bool):
        points.append((0.0, float(initial)))
    for entry in progress_view.get("rounds") or []:
        value = (entry.get("metrics") or {}).get(key)
        number = entry.get("round")
        if isinstance(value, int | float) and isinstance(number, int):
            points.append((float(number), float(value)))
    return points


def _progress_cell(run: Mapping[str, Any]) -> Html:
    view: Mapping[str, Any] = run.get("progress") or {}
    return progress(int(view.get("rounds_done") or 0), int(view.get("rounds_total") or 0))


def runs_page(runs: Fetched[list[dict[str, Any]]], *, viewer: Viewer) -> Html:
    """Every run, newest first: state, rounds done, the last nDCG@10."""
    parts: list[Html | None] = [problem_notice(runs, what="The runs are unavailable")]
    rows = []
    for run in runs.value or []:
        points = round_points(run)
        rows.append(
            (
                run_link(run.get("name")),
                state(run.get("state")),
                _progress_cell(run),
                metric(points[-1][1]) if points else NOTHING,
                when(run.get("created")),
                when(run.get("finished")),
            )
        )
    parts.append(
        table(
            ("Run", "State", "Rounds", "nDCG@10 (last)", "Created", "Finished"),
            rows,
            empty="No run has been started through the admin API yet.",
            table_id="runs",
        )
    )
    return page("Runs", join(parts), viewer=viewer, active="runs")


def _refusals(entry: Mapping[str, Any]) -> Html:
    refusals = entry.get("refusals") or []
    if not refusals:
        return NOTHING
    return tag(
        "ul",
        join(
            tag("li", tag("strong", r.get("node", "")), ": ", r.get("reason", "")) for r in refusals
        ),
        class_="refusals",
    )


def _plot(run: Mapping[str, Any]) -> Html:
    points = round_points(run)
    if not points:
        return notice(
            "No central metrics yet: the coordinator writes nDCG@10 after each evaluated "
            "round (none when the run's eval-dataset is 'none').",
            kind="muted",
        )
    return line_plot(
        points,
        title=f"nDCG@10 per round of run {run.get('name', '')}",
        x_label="round",
        y_label="nDCG@10",
        element_id="ndcg-plot",
    )


def run_page(run: Mapping[str, Any], *, viewer: Viewer) -> Html:
    """One run: its state, per-round progress with the nDCG@10 plot, epsilon, config."""
    view: Mapping[str, Any] = run.get("progress") or {}
    summary = facts(
        [
            ("State", state(run.get("state"))),
            ("Rounds", _progress_cell(run)),
            ("Flower run id", run.get("flower_run_id")),
            ("Flower status", run.get("flower_status")),
            ("Created", when(run.get("created"))),
            ("Submitted", when(run.get("submitted"))),
            ("Finished", when(run.get("finished"))),
            ("Reason", run.get("reason")),
        ],
        facts_id="run-facts",
    )
    rounds = [
        (
            str(entry.get("round", "")),
            flag(entry.get("released"), yes="released", no="withheld"),
            names(entry.get("answered") or []),
            _refusals(entry),
            metric((entry.get("metrics") or {}).get(PLOT_METRIC)),
        )
        for entry in view.get("rounds") or []
    ]
    per_node: Mapping[str, Any] = run.get("per_node_epsilon") or {}
    final: Mapping[str, Any] = run.get("final_metrics") or {}
    config: Mapping[str, Any] = run.get("run_config") or {}
    parts = [
        tag("section", summary, class_="panel"),
        tag("h2", "nDCG@10 per round"),
        _plot(run),
        tag("h2", "Rounds"),
        table(
            ("Round", "Aggregate", "Answered", "Refused", "nDCG@10"),
            rounds,
            empty="No round has finished yet.",
            table_id="rounds",
        ),
        tag("h2", "Epsilon per member"),
        table(
            ("Member", "Epsilon (fellow member's view)"),
            [(name, epsilon(value)) for name, value in sorted(per_node.items())],
            empty="Reported when the run ends.",
            table_id="run-epsilon",
        ),
    ]
    if final:
        parts += [
            tag("h2", "Final central metrics"),
            table(
                ("Metric", "Value"),
                [(key, metric(value)) for key, value in sorted(final.items())],
                empty="",
                table_id="final-metrics",
            ),
        ]
    parts += [
        tag("h2", "Run configuration"),
        table(
            ("Key", "Value"),
            [(key, tag("code", str(value))) for key, value in sorted(config.items())],
            empty="No run configuration recorded.",
            table_id="run-config",
        ),
    ]
    return page(f"Run {run.get('name', '')}", join(parts), viewer=viewer, active="runs")
