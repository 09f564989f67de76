"""One error body for every failure of the admin API, and the status of each error kind.

Every failure answers ``{"error": {"problem", "expected", "fix"}}``:

- :class:`~coordinator.admin.errors.AdminError` (and its subclasses): its ``status``;
  an :class:`~coordinator.admin.deps.AuthError` is a 401 (with ``WWW-Authenticate:
  Bearer``) or a 403;
- any other :class:`~embedding_core.errors.FedembedError`: 422 (a client's mistake);
- a request that does not match the OpenAPI schema: 422, naming the fields;
- an unknown path or a wrong method: 404 or 405;
- anything unexpected: logged with its traceback, answered with a bare 500 that reveals
  nothing.

:data:`ERROR_RESPONSES` documents those answers in the OpenAPI schema of every route.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from coordinator.admin.errors import AdminError
from embedding_core.errors import FedembedError

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "ErrorDetail",
    "error_response",
    "install_error_handlers",
]

logger = logging.getLogger(__name__)

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="fedembed-admin"'}


class ErrorDetail(BaseModel):
    """What was wrong, what was expected, how to fix it."""

    problem: str
    expected: str
    fix: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _error(description: str) -> dict[str, Any]:
    # "content" keeps the body documented as JSON on routes whose own answer is not
    # (FastAPI files an additional response's model under the route's media type)
    return {"model": ErrorBody, "description": description, "content": _JSON_ERROR}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("No valid admin API token."),
    403: _error("The token's role may not do this."),
    404: _error("No such path or object."),
    409: _error("Conflicts with the current state."),
    422: _error("The request is invalid."),
    503: _error("A service the admin API relies on failed or is not configured."),
}


def error_response(
    status: int,
    problem: str,
    *,
    expected: str = "",
    fix: str = "",
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The standard error body with ``status``."""
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

    @app.exception_handler(AdminError)
    async def _admin(_: Request, exc: AdminError) -> JSONResponse:
        status = int(exc.status)
        if status >= 500:
            logger.error("admin API: server-side failure: %s", exc.problem)
        headers = WWW_AUTHENTICATE if status == 401 else None
        return error_response(
            status, exc.problem, expected=exc.expected, fix=exc.fix, headers=headers
        )

    @app.exception_handler(FedembedError)
    async def _fedembed(_: Request, exc: FedembedError) -> JSONResponse:
        return error_response(422, exc.problem, expected=exc.expected, fix=exc.fix)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            422,
            f"the request is invalid: {_describe(exc.errors())}",
            expected="a request matching the OpenAPI schema at /openapi.json",
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
        logger.error("admin API: unexpected %s", type(exc).__name__, exc_info=exc)
        return error_response(500, "internal error", fix="retry later; the operator has the log")
