"""Errors of the index clients: the gateway's own problem, expected and fix, and its status.

Every 4xx/5xx answer of the gateway (and of the store) has the body
``{"error": {"problem", "expected", "fix"}}``; :func:`error_for` turns it into the
:class:`GatewayError` subclass of its status, carrying that text unchanged, so the CLI
shows the user what the service said.
"""

from __future__ import annotations

import httpx

from embedding_core.errors import FedembedError

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "GatewayError",
    "GatewayUnavailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestRejectedError",
    "UnexpectedAnswerError",
    "error_for",
    "retry_after",
]


class GatewayError(FedembedError):
    """The service refused a request; ``status`` is its HTTP status (0: none came).

    Args:
        status: The HTTP status code.
        problem: The service's problem text.
        expected: What it expected.
        fix: How to fix it.
    """

    def __init__(self, status: int, problem: str, *, expected: str = "", fix: str = "") -> None:
        self.status = status
        super().__init__(problem, expected=expected, fix=fix)


class AuthenticationError(GatewayError):
    """401: the key or token is missing, unknown, malformed or revoked."""


class PermissionDeniedError(GatewayError):
    """403: the key's role, scope or top-k cap does not allow the request."""


class NotFoundError(GatewayError):
    """404: no such collection, key or route."""


class ConflictError(GatewayError):
    """409: the collection already exists."""


class RequestRejectedError(GatewayError):
    """413/422: the request body is too large or invalid."""


class RateLimitedError(GatewayError):
    """429: the key's rate limit is exhausted; ``retry_after_s`` says for how long."""

    def __init__(
        self,
        status: int,
        problem: str,
        *,
        expected: str = "",
        fix: str = "",
        retry_after_s: float = 1.0,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(status, problem, expected=expected, fix=fix)


class GatewayUnavailableError(GatewayError):
    """The service is unreachable (status 0) or answered 5xx (storage trouble, a crash)."""


class UnexpectedAnswerError(GatewayError):
    """A 2xx answer that is not what the route returns (another service or version)."""


_BY_STATUS: dict[int, type[GatewayError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: NotFoundError,
    409: ConflictError,
    413: RequestRejectedError,
    422: RequestRejectedError,
}


def retry_after(response: httpx.Response, default: float = 1.0) -> float:
    """The seconds of the answer's ``Retry-After`` header (``default`` without one)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default


def error_for(response: httpx.Response) -> GatewayError:
    """The error of a 4xx/5xx answer, with the service's problem, expected and fix."""
    status = response.status_code
    try:
        detail = response.json()["error"]
        problem = str(detail["problem"])
        expected, fix = str(detail.get("expected", "")), str(detail.get("fix", ""))
    except (ValueError, KeyError, TypeError):
        problem = f"the service answered {status} {response.reason_phrase}".rstrip()
        expected, fix = "an answer of the fedembed index service", "check the URL"
    if status == 429:
        return RateLimitedError(
            status, problem, expected=expected, fix=fix, retry_after_s=retry_after(response)
        )
    kind = _BY_STATUS.get(status)
    if kind is None:
        kind = GatewayUnavailableError if status >= 500 else GatewayError
    return kind(status, problem, expected=expected, fix=fix)
