"""One HTTP connection to an index service: routes in, parsed answers or clear errors out.

:class:`ServiceTransport` sends a :class:`~index_client.routes.Route` with a bearer
token, retries (when asked to) on transport errors, 429 and 503 with exponential backoff
that honours ``Retry-After``, and turns any other 4xx/5xx into the
:class:`~index_client.errors.GatewayError` of its status. Every request the clients
send is idempotent (upserts, block puts, deletes, reads), so a retry never doubles one.

TLS: ``verify`` is a CA certificate file (the consortium's ``ca.crt``: only that CA is
trusted), an :class:`ssl.SSLContext`, or True (the system trust store). A certificate
the client does not trust (another CA, another host name, expired) ends the handshake
before a request byte, the bearer token included, is sent, and is raised at once (never
retried) as :class:`TlsTrustError`.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
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

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ServiceClient",
    "ServiceTransport",
    "TlsTrustError",
    "TlsVerify",
    "client_tls_context",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 60.0
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After (a spent query budget) is not waited out
_RETRY_STATUSES = (429, 503)

TlsVerify = ssl.SSLContext | str | os.PathLike[str] | bool
"""A CA certificate file, a client TLS context, True (system trust store) or False."""


class TlsTrustError(GatewayUnavailableError):
    """TLS with the service failed: its certificate is not trusted, or it speaks no TLS.

    Raised before any request byte (the bearer token included) was sent.
    """


def client_tls_context(verify: TlsVerify) -> ssl.SSLContext | bool:
    """The ``verify`` of an httpx client: a CA file becomes a context trusting only it.

    Raises:
        TlsTrustError: When the CA file cannot be read or holds no PEM certificate.
    """
    if isinstance(verify, bool):
        return ssl.create_default_context() if verify else False
    if isinstance(verify, ssl.SSLContext):
        return verify
    path = Path(verify)
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise TlsTrustError(
            0,
            f"the CA certificate file {path} cannot be used ({type(exc).__name__}: {exc})",
            expected="a readable PEM file with the CA certificate that signed the service's",
            fix="pass the consortium's ca.crt (a node kit's ca.crt, or `fedembed index "
            "tls-cert`'s ca.crt)",
        ) from None


def _ssl_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind an httpx transport error (the chain and arguments)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        pending.extend(a for a in current.args if isinstance(a, BaseException))
    return None


def _tls_error(base_url: str, failure: ssl.SSLError) -> TlsTrustError:
    if isinstance(failure, ssl.SSLCertVerificationError):
        return TlsTrustError(
            0,
            f"the TLS certificate of {base_url} is not trusted ({failure.verify_message}); "
            "nothing was sent",
            expected="a certificate signed by the CA this client trusts, naming the URL's host",
            fix="pass the CA certificate that signed the service's (--ca, or "
            "FEDEMBED_INDEX_STORE_CA for the gateway), or issue the service a certificate "
            "for this host (`fedembed index tls-cert --host ...`)",
        )
    return TlsTrustError(
        0,
        f"TLS with {base_url} failed ({failure.reason or type(failure).__name__}); "
        "nothing was sent",
        expected="a service started with --tls-cert at an https:// URL",
        fix="check the URL's scheme and port (http:// for a service without TLS)",
    )


class ServiceTransport:
    """An ``httpx.Client`` bound to one service and one bearer token.

    Args:
        base_url: The service's URL (a path prefix is kept).
        token: The API key or admin token (sent as ``Authorization: Bearer``).
        timeout_s: Per-request timeout.
        verify: TLS trust: a CA certificate file (only that CA), an ``ssl.SSLContext``,
            or True (the system trust store).
        retries: Extra attempts after a transport error, a 429 or a 503 (0: none); a
            ``Retry-After`` over :data:`MAX_RETRY_AFTER_S` (a spent query budget) is
            raised at once, never slept on.

    Raises:
        TlsTrustError: When ``verify`` names a CA file that cannot be used.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        verify: TlsVerify = True,
        retries: int = 0,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self._retries = retries
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            verify=client_tls_context(verify),
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
            TlsTrustError: When TLS fails (never retried: nothing was sent).
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
                # the handshake is part of connecting: a TLS failure there precedes the request
                failure = _ssl_failure(exc) if isinstance(exc, httpx.ConnectError) else None
                if failure is not None:
                    raise _tls_error(self.base_url, failure) from None
                if last:
                    raise GatewayUnavailableError(
                        0,
                        f"the index service at {self.base_url} is unreachable "
                        f"({type(exc).__name__})",
                        expected="a running `fedembed index serve`",
                        fix="check the URL (https:// for a service started with --tls-cert) "
                        "and that the service runs",
                    ) from None
            else:
                if response.is_success:
                    return response
                if last or response.status_code not in _RETRY_STATUSES:
                    raise error_for(response)
                delay = retry_after(response, delay)
                if delay > MAX_RETRY_AFTER_S:
                    raise error_for(response)
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
        verify: TLS trust: a CA certificate file (only that CA), an ``ssl.SSLContext``,
            or True (the system trust store).
        retries: Extra attempts after a transport error, a 429 or a 503.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        verify: TlsVerify = True,
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
