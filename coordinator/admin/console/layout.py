"""The console's page shell, its building blocks (tables, facts, notices) and its headers.

Every console response carries :data:`SECURITY_HEADERS` (set by
:class:`ConsoleHeaders`, also on redirects and errors): a CSP that allows nothing but the
console's own stylesheet, forms posting to the console itself and ``data:`` images; no
framing, no sniffing, no referrer and no caching of pages that show consortium state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator.admin.console.markup import Child, Html, join, tag
from embedding_core.errors import FedembedError

__all__ = [
    "CONSOLE_PREFIX",
    "CONTENT_SECURITY_POLICY",
    "NAVIGATION",
    "SECURITY_HEADERS",
    "ConsoleHeaders",
    "Fetched",
    "Viewer",
    "badge",
    "document",
    "facts",
    "fetch",
    "href",
    "notice",
    "page",
    "problem_notice",
    "table",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONSOLE_PREFIX = "/console"
_EMPTY = Html('<span class="muted">—</span>')

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
)

NAVIGATION: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("nodes", "Nodes"),
    ("runs", "Runs"),
    ("budgets", "Budgets"),
    ("models", "Models"),
    ("partners", "Partners"),
    ("audit", "Audit reports"),
)
"""The pages in the navigation bar: (page key, label); ``overview`` is the console's root."""


class ConsoleHeaders:
    """ASGI middleware: the security headers on every response under the console's prefix."""

    def __init__(self, app: ASGIApp, prefix: str = CONSOLE_PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to a console response's start."""
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not (
            path == self.prefix or path.startswith(self.prefix + "/")
        ):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in SECURITY_HEADERS
                    if name.encode("latin-1") not in names
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the token's name and role (shown), the logout form's value."""

    name: str
    role: str
    logout_proof: str


def href(page_key: str) -> str:
    """The path of a console page."""
    return f"{CONSOLE_PREFIX}/" if page_key == "overview" else f"{CONSOLE_PREFIX}/{page_key}"


def document(title: str, body: Html) -> Html:
    """A whole HTML document: the console's stylesheet, no script, no external resource."""
    head = join(
        [
            Html('<meta charset="utf-8">'),
            Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
            Html('<meta name="referrer" content="no-referrer">'),
            tag("title", f"{title} · fedembed console"),
            tag("link", rel="stylesheet", href=f"{CONSOLE_PREFIX}/static/console.css"),
            tag("link", rel="icon", href="data:,"),
        ]
    )
    return Html(f'<!doctype html>\n<html lang="en"><head>{head}</head>{body}</html>\n')


def page(title: str, content: Html, *, viewer: Viewer, active: str) -> Html:
    """A console page: navigation, who is signed in (with a logout button), the content."""
    links = join(
        tag("a", label, href=href(key), class_="active" if key == active else None)
        for key, label in NAVIGATION
    )
    logout = tag(
        "form",
        tag("span", viewer.name, " ", tag("span", viewer.role, class_="role"), class_="viewer"),
        tag("input", type="hidden", name="proof", value=viewer.logout_proof),
        tag("button", "Log out", type="submit"),
        method="post",
        action=f"{CONSOLE_PREFIX}/logout",
        class_="logout",
    )
    header = tag(
        "header",
        tag("a", "fedembed consortium", href=href("overview"), class_="brand"),
        tag("nav", links, aria_label="console pages"),
        logout,
    )
    main = tag("main", tag("h1", title), content, id="content")
    footer = tag(
        "footer", "Read-only view of the admin API. Changes go through the API or the CLI."
    )
    return document(title, tag("body", header, main, footer, data_page=active))


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Child]],
    *,
    empty: str,
    table_id: str | None = None,
) -> Html:
    """A table; ``empty`` is shown instead when there is no row."""
    body = [tag("tr", join(tag("td", cell) for cell in row)) for row in rows]
    if not body:
        return tag("p", empty, class_="empty", id=table_id)
    head = tag("thead", tag("tr", join(tag("th", name, scope="col") for name in headers)))
    return tag("table", head, tag("tbody", join(body)), id=table_id)


def facts(items: Iterable[tuple[str, Child]], *, facts_id: str | None = None) -> Html:
    """A definition list of (label, value) pairs."""
    return tag(
        "dl",
        join(
            join([tag("dt", label), tag("dd", _EMPTY if value is None or value == "" else value)])
            for label, value in items
        ),
        class_="facts",
        id=facts_id,
    )


def badge(text: str, kind: str) -> Html:
    """A small coloured label: ``kind`` is ok, warn, bad or muted."""
    return tag("span", text, class_=f"badge badge-{kind}")


def notice(problem: str, *, fix: str | None = None, kind: str = "warn") -> Html:
    """A boxed message (a service that did not answer, a run without metrics ...)."""
    return tag(
        "div",
        tag("p", problem),
        tag("p", fix, class_="fix") if fix else None,
        class_=f"notice notice-{kind}",
        role="status",
    )


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """What a page asked a domain service for: the answer, or the problem it raised."""

    value: T | None
    problem: FedembedError | None = None


def fetch(read: Callable[[], T], *, what: str) -> Fetched[T]:
    """Call ``read``; a user-facing error (an unreachable gateway ...) becomes a notice."""
    try:
        return Fetched(read())
    except FedembedError as err:
        logger.warning("console: %s unavailable: %s", what, err.problem)
        return Fetched(None, err)


def problem_notice(fetched: Fetched[T], *, what: str) -> Html | None:
    """The notice for a failed fetch (None when it answered)."""
    if fetched.problem is None:
        return None
    return notice(f"{what}: {fetched.problem.problem}", fix=fetched.problem.fix or None)
