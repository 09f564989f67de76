"""ASGI middleware: authenticate a request from its headers before any of its body is read.

FastAPI reads and parses a request's body before it runs the route's dependencies, so
the credential check of :mod:`secure_index.service.deps` alone would let a client with
no credential make the service receive and parse up to the body limit (8 MiB, and
256 MiB on CKKS block routes) for each request. :class:`AuthenticateFirst` sits in front
of the app (outside :class:`~secure_index.service.http_errors.BodySizeLimit`) and runs
a header check first: a request without a valid credential is answered 401 with
``Connection: close`` before the app or the body limit see it, and not one byte of its
body is read. Public paths (health, OpenAPI schema, docs) pass unchecked; they take no
body. The route's own dependency still checks the credential (role, scope): the
middleware only decides whether the body is worth reading.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from index_client.routes import HEALTH
from secure_index.service.http_errors import ApiError, error_response

__all__ = ["AuthenticateFirst", "HeaderCheck", "public_paths"]

logger = logging.getLogger(__name__)

HeaderCheck = Callable[[str, str | None], None]
"""``check(path, authorization)``: returns when the credential may use ``path``, else
raises :class:`~secure_index.service.http_errors.ApiError` (401)."""


def public_paths(app: FastAPI) -> frozenset[str]:
    """The paths of ``app`` that need no credential: health, the schema and the docs."""
    paths = (
        HEALTH.template,
        app.openapi_url,
        app.docs_url,
        app.redoc_url,
        app.swagger_ui_oauth2_redirect_url,
    )
    return frozenset(p for p in paths if p)


class AuthenticateFirst:
    """Refuse requests without a valid credential before reading their body.

    Args:
        app: The wrapped application.
        check: The header check (a key lookup, a constant-time token comparison).
        public_paths: Paths that need no credential (they take no body).
    """

    def __init__(self, app: ASGIApp, *, check: HeaderCheck, public_paths: Collection[str]) -> None:
        self.app = app
        self._check = check
        self._public = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass an authenticated (or public) request on; answer any other with 401."""
        if scope["type"] != "http" or scope["path"] in self._public:
            await self.app(scope, receive, send)
            return
        values = [value for name, value in scope["headers"] if name == b"authorization"]
        header = values[0].decode("latin-1") if len(values) == 1 else None  # 2 = ambiguous
        try:
            await run_in_threadpool(self._check, scope["path"], header)
        except ApiError as err:
            response = error_response(
                err.status,
                err.problem,
                expected=err.expected,
                fix=err.fix,
                headers={**err.headers, "Connection": "close"},  # the body stays unread
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
