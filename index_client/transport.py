"""One HTTP connection to an index service: routes in, parsed answers or clear errors out.

:class:`ServiceTransport` sends a :class:`~index_client.routes.Route` with a bearer
token, retries (when asked to) on transport errors, 429 and 503 with exponential backoff
that honours ``Retry-After``, and turns any other 4xx/5xx into the
:class:`~index_client.errors.GatewayError` of its status. Every request the clients
send is idempotent (upserts, block puts, deletes, reads), so a retry never doubles one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from index_client.errors import (
    GatewayError,
    GatewayUnavailableError,
    UnexpectedAnswerError,
    error_for,
    retry_after,
)
from index_client.routes import HEALTH, Route

__all__ = ["DEFAULT_TIMEOUT_S", "ServiceClient", "ServiceTransport"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 60.0
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
_RETRY_STATUSES = (429, 503)


class ServiceTransport:
    """An ``httpx.Client`` bound to one service and one bearer token.

    Args:
        base_url: The service's URL (a path prefix is kept).
        token: The API key or admin token (sent as ``Authorization: Bearer``).
        timeout_s: Per-request timeout.
        verify: TLS verification (a CA bundle path, or True).
        retries: Extra attempts after a transport error, a 429 or a 503 (0: none).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        verify: str | bool = True,
        retries: int = 0,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self._retries = retries
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            verify=verify,
        )

    @property
    def base_url(self) -> str:
        """The service's URL."""
        return str(self._http.base_url).rstrip("/")

    def send(
        self,
        route: Route,
        *,
        path: Mapping[str, str | int] | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request (retried as configured); the 2xx answer, else its error.

        Raises:
            GatewayError: The subclass of the answer's status (with the service's text),
                or :class:`GatewayUnavailableError` when the service is unreachable.
        """
        url = route.path(**(path or {}))
        delay = FIRST_DELAY_S
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = self._http.request(
                    route.method, url, params=params, json=json, content=content, headers=headers
                )
            except httpx.TransportError as exc:
                if last:
                    raise GatewayUnavailableError(
                        0,
                        f"the index service at {self.base_url} is unreachable "
                        f"({type(exc).__name__})",
                        expected="a running `fedembed index serve`",
                        fix="check the URL and that the service runs",
                    ) from None
            else:
                if response.is_success:
                    return response
                if last or response.status_code not in _RETRY_STATUSES:
                    raise error_for(response)
                delay = retry_after(response, delay)
            logger.info(
                "index client: %s %s: attempt %d failed, retrying in %.1f s",
                route.method,
                route.template,
                attempt + 1,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, route: Route, parse: Callable[[Any], T], **kwargs: Any) -> T:
        """:meth:`send`, then ``parse`` of the JSON answer.

        Raises:
            UnexpectedAnswerError: When the answer is not the route's JSON.
        """
        response = self.send(route, **kwargs)
        try:
            return parse(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise UnexpectedAnswerError(
                response.status_code,
                f"the answer of {route.method} {route.template} is malformed "
                f"({type(exc).__name__})",
                expected="the fedembed index service's answer",
                fix="check the URL and that client and service run the same fedembed version",
            ) from None

    def healthy(self) -> bool:
        """Whether the service answers its health check (no key needed)."""
        try:
            self.send(HEALTH)
        except GatewayError:
            return False
        return True

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


class ServiceClient:
    """Base of the typed clients: one :class:`ServiceTransport`, closed on exit.

    Args:
        base_url: The service's URL.
        token: The API key or admin token.
        timeout_s: Per-request timeout.
        verify: TLS verification (a CA bundle path, or True).
        retries: Extra attempts after a transport error, a 429 or a 503.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        verify: str | bool = True,
        retries: int = 0,
    ) -> None:
        self._transport = ServiceTransport(
            base_url, token, timeout_s=timeout_s, verify=verify, retries=retries
        )

    @property
    def base_url(self) -> str:
        """The service's URL."""
        return self._transport.base_url

    def healthy(self) -> bool:
        """Whether the service answers its health check."""
        return self._transport.healthy()

    def close(self) -> None:
        """Close the connection pool."""
        self._transport.close()

    def __enter__(self) -> Self:
        """The client itself (closed when the block ends)."""
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Close the connection pool."""
        self.close()
