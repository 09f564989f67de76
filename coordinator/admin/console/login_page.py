"""The console's login page and its error page (no navigation: nobody is signed in yet)."""

from __future__ import annotations

from coordinator.admin.console.layout import CONSOLE_PREFIX, document, notice
from coordinator.admin.console.markup import Html, tag

__all__ = ["error_page", "login_page"]


def login_page(nonce: str, *, problem: str | None = None) -> Html:
    """The login form: an admin API token of any role (auditors see everything, read-only)."""
    form = tag(
        "form",
        tag("label", "Admin API token", for_="token"),
        tag(
            "input",
            id="token",
            name="token",
            type="password",
            autocomplete="off",
            required=True,
            autofocus=True,
            spellcheck="false",
        ),
        tag("input", type="hidden", name="nonce", value=nonce),
        tag("button", "Sign in", type="submit", class_="primary", id="sign-in"),
        method="post",
        action=f"{CONSOLE_PREFIX}/login",
    )
    hint = tag(
        "p",
        "Any admin, operator or auditor token works: the console only reads. Create one with ",
        tag("code", "fedembed coordinator admin token create"),
        ".",
        class_="hint",
    )
    body = tag(
        "main",
        tag("h1", "fedembed consortium console"),
        notice(problem, fix="Check the token and sign in again.", kind="bad") if problem else None,
        form,
        hint,
        class_="login",
    )
    return document("Sign in", tag("body", body, data_page="login"))


def error_page(title: str, problem: str, *, fix: str | None = None) -> Html:
    """A page for a console request that cannot be answered (unknown run, refused post)."""
    body = tag(
        "main",
        tag("h1", title),
        notice(problem, fix=fix, kind="bad"),
        tag("p", tag("a", "Back to the console", href=f"{CONSOLE_PREFIX}/")),
        class_="login",
    )
    return document(title, tag("body", body, data_page="error"))
