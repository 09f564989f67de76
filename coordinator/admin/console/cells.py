"""How the console writes single values: numbers, times, hashes, states as badges, links."""

from __future__ import annotations

import math
from collections.abc import Iterable
from urllib.parse import quote

from coordinator.admin.console.layout import CONSOLE_PREFIX, badge
from coordinator.admin.console.markup import Html, join, tag

__all__ = [
    "NOTHING",
    "digest",
    "epsilon",
    "flag",
    "metric",
    "names",
    "progress",
    "run_link",
    "state",
    "when",
]

NOTHING = Html('<span class="muted">—</span>')
"""What an empty cell shows."""

_STATE_KINDS = {
    "succeeded": "ok",
    "enrolled": "ok",
    "registered": "ok",
    "online": "ok",
    "released": "ok",
    "verified": "ok",
    "ok": "ok",
    "live": "ok",
    "active": "ok",
    "intact": "ok",
    "running": "warn",
    "starting": "warn",
    "pending": "warn",
    "near": "warn",
    "unrecorded": "warn",
    "suspended": "warn",
    "failed": "bad",
    "withheld": "bad",
    "revoked": "bad",
    "over": "bad",
    "mismatch": "bad",
    "missing": "bad",
    "damaged": "bad",
    "stopped": "muted",
    "offline": "muted",
    "unregistered": "muted",
}


def state(value: str | None) -> Html:
    """A state as a coloured badge (unknown states in grey); None as an empty cell."""
    if not value:
        return NOTHING
    return badge(value, _STATE_KINDS.get(value.lower(), "muted"))


def flag(value: bool | None, *, yes: str, no: str, unknown: str = "unknown") -> Html:
    """A yes/no/unknown value as a badge."""
    if value is None:
        return badge(unknown, "muted")
    return state(yes) if value else badge(no, _STATE_KINDS.get(no, "muted"))


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def epsilon(value: object) -> Html:
    """An epsilon with two decimals (an empty cell when unknown)."""
    number = _finite(value)
    return NOTHING if number is None else Html(f"{number:.2f}")


def metric(value: object) -> Html:
    """A retrieval metric with four decimals (an empty cell when unknown)."""
    number = _finite(value)
    return NOTHING if number is None else Html(f"{number:.4f}")


def when(value: object) -> Html:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` (UTC kept as written), in a ``<time>``."""
    if not isinstance(value, str) or not value:
        return NOTHING
    shown = value.replace("T", " ").removesuffix("+00:00").removesuffix("Z")
    return tag("time", shown, datetime=value)


def digest(value: object, *, length: int = 16) -> Html:
    """A SHA-256 (or fingerprint) shortened, the whole value in the title."""
    if not isinstance(value, str) or not value:
        return NOTHING
    short = value if len(value) <= length else value[:length] + "…"
    return tag("code", short, title=value)


def names(values: Iterable[str]) -> Html:
    """A comma-separated list of names (an empty cell for none)."""
    listed = list(values)
    return join(listed, ", ") if listed else NOTHING


def progress(done: int, total: int) -> Html:
    """``done`` of ``total`` as a ``<progress>`` bar with the numbers next to it."""
    if total <= 0:
        return Html(f"{done} rounds")
    return join(
        [
            tag("progress", f"{done}/{total}", value=min(done, total), max=total),
            tag("span", f" {done} / {total}", class_="count"),
        ]
    )


def run_link(name: object) -> Html:
    """A link to a run's page (plain text when the name is unknown)."""
    if not isinstance(name, str) or not name:
        return NOTHING
    return tag("a", name, href=f"{CONSOLE_PREFIX}/runs/{quote(name, safe='')}")
