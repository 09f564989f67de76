"""One error body for every HTTP failure, and the status code of each error kind.

A client's mistake is always a 4xx with ``{"error": {"problem", "expected", "fix"}}``;
the server's own trouble (storage full, store unreachable) is a 503 with Retry-After; an
unexpected exception is logged with its traceback and answered with a bare 500 that
reveals nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crypto.errors import CryptoInputError, KeyManagementError
from embedding_core.errors import FedembedError
from index_client.block_format import BlockFormatError
from secure_index.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    IntegrityError,
    OwnershipError,
    RequestError,
    StorageError,
    VectorSpaceError,
)

__all__ = ["ApiError", "BodySizeLimit", "error_response", "install_error_handlers"]

logger = logging.getLogger(__name__)

RETRY_AFTER = "Retry-After"
STORAGE_RETRY_S = 30
_STATUS: tuple[tuple[type[FedembedError], int], ...] = (
    (CollectionNotFoundError, 404),
    (CollectionExistsError, 409),
    (VectorSpaceError, 409),
    (OwnershipError, 403),
    (RequestError, 422),
    (BlockFormatError, 422),
    (CryptoInputError, 422),
    (StorageError, 503),
    (IntegrityError, 503),
    (KeyManagementError, 503),
)


class ApiError(Exception):
    """An HTTP error with the standard body (401, 403, 404, 413, 429, ...)."""

    def __init__(
        self,
        status: int,
        problem: str,
        *,
        expected: str = "",
        fix: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(problem)
        self.status, self.problem, self.expected, self.fix = status, problem, expected, fix
        self.headers = dict(headers or {})


def error_response(
    status: int,
    problem: str,
    *,
    expected: str = "",
    fix: str = "",
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The standard error body."""
    body = {"error": {"problem": problem, "expected": expected, "fix": fix}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _describe(errors: Any) -> str:
    parts = []
    for err in list(errors)[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the standard body."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.problem, expected=exc.expected, fix=exc.fix, headers=exc.headers
        )

    @app.exception_handler(FedembedError)
    async def _fedembed(_: Request, exc: FedembedError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 422)
        headers = {RETRY_AFTER: str(STORAGE_RETRY_S)} if status == 503 else {}
        if status >= 500:
            logger.error("request: server-side failure: %s", exc.problem)
        return error_response(
            status, exc.problem, expected=exc.expected, fix=exc.fix, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            422,
            f"the request is invalid: {_describe(exc.errors())}",
            expected="a body matching the OpenAPI schema at /openapi.json",
            fix="correct the fields named above",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code,
            str(exc.detail),
            expected="a path and method listed at /openapi.json",
            fix="check the URL and the HTTP method",
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("request: unexpected %s", type(exc).__name__)
        return error_response(500, "internal error", fix="retry later; the operator has the log")


class BodySizeLimit:
    """ASGI middleware: refuse bodies above the limit with 413 before parsing them.

    Args:
        app: The wrapped application.
        max_bytes: The limit of every route.
        large_paths: A regular expression of paths allowed ``large_max_bytes`` instead
            (routes that carry ciphertexts, e.g. CKKS blocks).
        large_max_bytes: Their limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        large_paths: str | None = None,
        large_max_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._large = re.compile(large_paths) if large_paths else None
        self._large_max = max(large_max_bytes, max_bytes)

    def _limit(self, scope: Scope) -> int:
        if self._large is not None and self._large.fullmatch(str(scope.get("path", ""))):
            return self._large_max
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 413 when its body exceeds the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._reject(scope, receive, send, limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ApiError(413, "request body too large")
            return message

        try:
            await self.app(scope, limited, send)
        except ApiError:
            await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            413,
            "the request body is larger than this service accepts",
            expected=f"at most {limit} bytes",
            fix="split the upload into smaller batches",
        )
        await response(scope, receive, send)
