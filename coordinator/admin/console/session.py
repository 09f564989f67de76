"""The console's sign-in: an admin API token kept in an HttpOnly, SameSite=Strict cookie.

The login form posts a token of any role; a live one is set as the cookie (``Secure`` when
the console is served over https, ``Path=/console``) and every page checks it again, so a
revoked token stops working at the next page. The console changes no state except its
own cookie, and its two forms are protected against cross-site posts (login CSRF, forced
logout) three ways: the cookies are ``SameSite=Strict``; a post a browser marks as coming
from another site (``Sec-Fetch-Site``, or an ``Origin`` of another host) is refused; and
each form carries a value another site cannot know: the login form a random nonce that
must match the nonce cookie set with the form (double submit), the logout form a digest
of the session's own token. (``Referrer-Policy: no-referrer`` makes browsers send
``Origin: null`` with a form post, so the origin alone cannot decide.)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from coordinator.admin.console.layout import CONSOLE_PREFIX
from coordinator.admin.deps import PartsDep
from coordinator.admin.tokens import AdminToken

__all__ = [
    "COOKIE_NAME",
    "MAX_FORM_BYTES",
    "NONCE_COOKIE",
    "ConsoleCallerDep",
    "ConsoleLoginRequired",
    "ConsoleSession",
    "clear_session",
    "console_caller",
    "form_fields",
    "login_nonce_matches",
    "login_required",
    "logout_proof",
    "new_login_nonce",
    "same_origin",
    "set_login_nonce",
    "set_session",
]

logger = logging.getLogger(__name__)

COOKIE_NAME = "fedembed_console"
NONCE_COOKIE = "fedembed_console_login"
MAX_FORM_BYTES = 4096


class ConsoleLoginRequired(Exception):  # noqa: N818 (a signal, answered by a redirect)
    """The request carries no live token: the browser is sent to the login page."""


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in browser: the token's record and the value its logout form carries."""

    token: AdminToken
    logout_proof: str


def logout_proof(secret: str) -> str:
    """The logout form's value for a session: a digest of its token (never the token)."""
    return hashlib.sha256(b"fedembed console logout\x00" + secret.encode()).hexdigest()


def console_caller(request: Request, parts: PartsDep) -> ConsoleSession:
    """The live token in the console's cookie (any role); else the login page."""
    secret = request.cookies.get(COOKIE_NAME)
    token = parts.tokens.authenticate(secret) if secret else None
    if token is None or secret is None:
        raise ConsoleLoginRequired
    return ConsoleSession(token, logout_proof(secret))


ConsoleCallerDep = Annotated[ConsoleSession, Depends(console_caller)]


async def login_required(request: Request, exc: Exception) -> Response:
    """The answer to :class:`ConsoleLoginRequired`: to the login page, a stale cookie dropped."""
    response = RedirectResponse(f"{CONSOLE_PREFIX}/login", status_code=303)
    if COOKIE_NAME in request.cookies:
        clear_session(response)
    return response


def _set_cookie(response: Response, name: str, value: str, *, secure: bool) -> None:
    response.set_cookie(
        name, value, path=CONSOLE_PREFIX, httponly=True, samesite="strict", secure=secure
    )


def set_session(response: Response, secret: str, *, secure: bool) -> None:
    """Keep ``secret`` in the console's cookie (HttpOnly, SameSite=Strict, Path=/console)."""
    _set_cookie(response, COOKIE_NAME, secret, secure=secure)
    response.delete_cookie(NONCE_COOKIE, path=CONSOLE_PREFIX, httponly=True, samesite="strict")


def clear_session(response: Response) -> None:
    """Remove the console's cookie."""
    response.delete_cookie(COOKIE_NAME, path=CONSOLE_PREFIX, httponly=True, samesite="strict")


def new_login_nonce() -> str:
    """A fresh nonce for a login form (:func:`set_login_nonce` sets it as a cookie too)."""
    return secrets.token_urlsafe(24)


def set_login_nonce(response: Response, nonce: str, *, secure: bool) -> None:
    """Set the login form's nonce as a cookie: the form must post the same value back."""
    _set_cookie(response, NONCE_COOKIE, nonce, secure=secure)


def login_nonce_matches(request: Request, fields: dict[str, str]) -> bool:
    """Whether the login form posted the nonce its own cookie holds."""
    cookie, posted = request.cookies.get(NONCE_COOKIE), fields.get("nonce")
    return bool(cookie and posted) and hmac.compare_digest(str(cookie), str(posted))


def same_origin(request: Request) -> bool:
    """Whether a form post may come from the console's own pages, as far as the browser says.

    ``Sec-Fetch-Site`` decides where a browser sends it; else an ``Origin`` naming another
    host or scheme is refused. (``Origin: null`` is what a form post under
    ``Referrer-Policy: no-referrer`` carries: the form's own value decides then.)
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host") and parts.scheme == request.url.scheme


async def form_fields(request: Request) -> dict[str, str] | None:
    """The fields of a urlencoded form post (first value each), None if it is not one."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        fields = parse_qs(text, max_num_fields=8)
    except ValueError:
        return None
    return {name: values[0] for name, values in fields.items()}
