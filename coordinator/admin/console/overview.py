"""The console's overview: one card per page with the figure that matters most there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coordinator.admin.console.layout import Fetched, Viewer, href, page
from coordinator.admin.console.markup import Html, join, tag
from coordinator.admin.console.pages_release import AuditView, BudgetView
from coordinator.admin.members import Roster
from index_client.answers import ApiKey

__all__ = ["Card", "OverviewData", "overview_cards", "overview_page"]


@dataclass(frozen=True)
class Card:
    """One overview card: the page it links to, a headline figure and a few lines."""

    key: str
    label: str
    figure: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class OverviewData:
    """What every domain service answered, for the overview."""

    roster: Fetched[Roster]
    runs: Fetched[list[dict[str, Any]]]
    budgets: Fetched[BudgetView]
    models: Fetched[list[dict[str, Any]]]
    partners: Fetched[Sequence[ApiKey]]
    audit: Fetched[AuditView]


def _unavailable(key: str, label: str, fetched: Fetched[Any]) -> Card | None:
    if fetched.problem is None:
        return None
    return Card(key, label, "—", (f"unavailable: {fetched.problem.problem}",))


def _nodes(data: OverviewData) -> Card:
    roster = data.roster.value
    if roster is None:
        return _unavailable("nodes", "Nodes", data.roster) or Card("nodes", "Nodes", "—", ())
    enrolled = [m for m in roster.members if m.state == "enrolled"]
    revoked = len(roster.members) - len(enrolled)
    online = sum(1 for m in enrolled if m.online)
    lines = [f"{len(enrolled)} enrolled, {revoked} revoked"]
    lines.append(f"{online} online" if roster.superlink_reachable else "SuperLink not reachable")
    return Card("nodes", "Nodes", str(len(enrolled)), tuple(lines))


def _runs(data: OverviewData) -> Card:
    runs = data.runs.value
    if runs is None:
        return _unavailable("runs", "Runs", data.runs) or Card("runs", "Runs", "—", ())
    active = sum(1 for r in runs if r.get("state") in ("pending", "starting", "running"))
    lines = [f"{active} in progress"]
    if runs:
        latest = runs[0]
        lines.append(f"latest: {latest.get('name')} ({latest.get('state')})")
    return Card("runs", "Runs", str(len(runs)), tuple(lines))


def _budgets(data: OverviewData) -> Card:
    view = data.budgets.value
    if view is None:
        return _unavailable("budgets", "Budgets", data.budgets) or Card(
            "budgets", "Budgets", "—", ()
        )
    flagged = [m.member for m in view.members if m.status != "ok"]
    top = max((m.epsilon for m in view.members), default=0.0)
    lines = (
        f"budget {view.max_epsilon:g} per member",
        f"{len(flagged)} near or over" if flagged else "every member within budget",
    )
    return Card("budgets", "Budgets", f"ε {top:.2f}", lines)


def _models(data: OverviewData) -> Card:
    versions = data.models.value
    if versions is None:
        return _unavailable("models", "Models", data.models) or Card("models", "Models", "—", ())
    live = next((v for v in versions if v.get("live")), None)
    figure = f"v{live.get('version')}" if live else "none live"
    return Card("models", "Models", figure, (f"{len(versions)} versions registered",))


def _partners(data: OverviewData) -> Card:
    keys = data.partners.value
    if keys is None:
        return _unavailable("partners", "Partners", data.partners) or Card(
            "partners", "Partners", "—", ()
        )
    active = sum(1 for k in keys if not k.revoked_at)
    return Card("partners", "Partners", str(active), (f"{len(keys) - active} revoked",))


def _audit(data: OverviewData) -> Card:
    view = data.audit.value
    if view is None:
        return _unavailable("audit", "Audit reports", data.audit) or Card(
            "audit", "Audit reports", "—", ()
        )
    verified = sum(1 for _, v in view.reports if v.ok)
    running = sum(1 for j in view.jobs if j.state.value == "running")
    lines = (f"{verified} of {len(view.reports)} verify", f"{running} audit jobs running")
    return Card("audit", "Audit reports", str(len(view.reports)), lines)


def overview_cards(data: OverviewData) -> list[Card]:
    """The cards, in the navigation's order."""
    return [_nodes(data), _runs(data), _budgets(data), _models(data), _partners(data), _audit(data)]


def overview_page(cards: Sequence[Card], *, viewer: Viewer) -> Html:
    """The overview page."""
    shown = [
        tag(
            "section",
            tag("h2", tag("a", card.label, href=href(card.key))),
            tag("div", card.figure, class_="figure"),
            join(tag("p", line) for line in card.lines),
            class_="card",
            id=f"card-{card.key}",
        )
        for card in cards
    ]
    return page(
        "Overview", tag("div", join(shown), class_="cards"), viewer=viewer, active="overview"
    )
