"""Prometheus ``/metrics`` of the query gateway and of the index store.

Each app gets its own :class:`~prometheus_client.CollectorRegistry` (two apps in one
process never mix their counts) and one ASGI middleware, :class:`MetricsMiddleware`,
placed outermost so that it also counts the 401s the header check answers before the
app runs. It records, per request:

* ``<ns>_requests_total{route, method, status}``: ``route`` is the route *template*
  (``/v1/collections/{collection}/query``), never the path, so neither collection
  names nor document ids become label values; a path no route matches is
  ``unmatched``;
* ``<ns>_request_duration_seconds{route, method}``: a latency histogram;
* ``<ns>_denials_total{route, status}``: the 401, 403 and 429 answers;
* gateway only, ``fedembed_gateway_partner_queries_answered_total{key_id}``: answered
  partner queries by public key id (the token's secret part is never read into a label);
* gateway only, ``fedembed_gateway_keys{role, state}``: keys that are ``active``,
  ``suspended`` (for probing) or ``revoked``, read from the key store at each scrape.

``GET /metrics`` itself needs a bearer token: the gateway's admin token
(``FEDEMBED_INDEX_ADMIN_TOKEN``) on the gateway, the store token
(``FEDEMBED_INDEX_STORE_TOKEN``) on the store. The output carries counts, route
templates, methods, statuses and key ids: no secret, no token, no partner name, no
collection name, no vector and no text.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from secure_index.service.credentials import CredentialStore
from secure_index.service.gateway_access import bearer_token
from secure_index.service.http_errors import ApiError, error_response

__all__ = [
    "DENIAL_STATUSES",
    "GATEWAY_NAMESPACE",
    "METRICS_PATH",
    "STORE_NAMESPACE",
    "UNMATCHED_ROUTE",
    "KeyStateCollector",
    "MetricsMiddleware",
    "ServiceMetrics",
    "install_metrics",
    "token_check",
]

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
GATEWAY_NAMESPACE = "fedembed_gateway"
STORE_NAMESPACE = "fedembed_store"
UNMATCHED_ROUTE = "unmatched"
DENIAL_STATUSES = frozenset({401, 403, 429})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
_PARAMETER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}")
_KEY_ID = re.compile(r"fek_([0-9a-f]{12})_")  # the public part of a partner or node token

TokenCheck = Callable[[str | None], None]
"""``check(authorization)``: returns when the header may read ``/metrics``, else raises
:class:`~secure_index.service.http_errors.ApiError` (401)."""


def token_check(token: str, *, variable: str) -> TokenCheck:
    """A check that admits exactly ``Authorization: Bearer <token>`` (compared in constant time).

    ``variable`` names the environment variable the caller's token comes from, for the
    error's expected and fix. An empty ``token`` admits nobody.
    """
    secret = token.encode()

    def check(authorization: str | None) -> None:
        given = bearer_token(authorization)
        if given is None or not secret or not hmac.compare_digest(given.encode(), secret):
            raise ApiError(
                401,
                "missing or wrong token for /metrics",
                expected=f"Authorization: Bearer <{variable}>",
                fix=f"give the Prometheus scrape job the service's {variable} as its bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


class KeyStateCollector(Collector):
    """``<ns>_keys{role, state}``: how many keys are active, suspended or revoked now."""

    def __init__(self, credentials: CredentialStore, *, namespace: str) -> None:
        self._credentials = credentials
        self._name = f"{namespace}_keys"

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the key store is read only when scraped."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The key counts by role and state, read from the key store."""
        family = GaugeMetricFamily(
            self._name,
            "API keys by role and state (active, suspended for probing, revoked)",
            labels=["role", "state"],
        )
        counts: dict[tuple[str, str], int] = {}
        for cred in self._credentials.list(include_revoked=True):
            if cred.revoked_at is not None:
                state = "revoked"
            elif cred.suspended_at is not None:
                state = "suspended"
            else:
                state = "active"
            counts[(str(cred.role), state)] = counts.get((str(cred.role), state), 0) + 1
        for role in ("partner", "node"):
            for state in ("active", "suspended", "revoked"):
                family.add_metric([role, state], counts.get((role, state), 0))
        yield family


@dataclass
class ServiceMetrics:
    """The metrics of one app, in a registry of its own.

    Args:
        namespace: Prefix of every metric name (``fedembed_gateway``, ``fedembed_store``).
        answered_routes: ``(method, template)`` pairs whose 2xx answers count as answered
            partner queries, by key id (empty: no such counter).
    """

    namespace: str
    answered_routes: frozenset[tuple[str, str]] = frozenset()
    registry: CollectorRegistry = field(init=False)
    requests: Counter = field(init=False)
    latency: Histogram = field(init=False)
    denials: Counter = field(init=False)
    answered: Counter | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{self.namespace}_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{self.namespace}_request_duration_seconds",
            "Time to answer, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.denials = Counter(
            f"{self.namespace}_denials",
            "Requests refused: 401 (no valid credential), 403 (not allowed), 429 (rate/budget)",
            ["route", "status"],
            registry=self.registry,
        )
        if self.answered_routes:
            self.answered = Counter(
                f"{self.namespace}_partner_queries_answered",
                "Partner queries answered, by the key's public id",
                ["key_id"],
                registry=self.registry,
            )

    def observe(
        self, route: str, method: str, status: int, seconds: float, authorization: str | None
    ) -> None:
        """Count one finished request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if status in DENIAL_STATUSES:
            self.denials.labels(route, str(status)).inc()
        answered = self.answered is not None and 200 <= status < 300
        if answered and (method, route) in self.answered_routes:
            key_id = _key_id(authorization)
            if key_id is not None and self.answered is not None:
                self.answered.labels(key_id).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


def _key_id(authorization: str | None) -> str | None:
    """The public key id of a partner token (only called once the key was accepted)."""
    token = bearer_token(authorization)
    match = _KEY_ID.match(token) if token else None
    return match.group(1) if match else None


def _pattern(template: str) -> re.Pattern[str]:
    """A pattern of the paths ``template`` names (a parameter is one path segment)."""
    return re.compile("[^/]+".join(re.escape(part) for part in _PARAMETER.split(template)))


def _authorization(scope: Scope) -> str | None:
    values = [value for name, value in scope["headers"] if name == b"authorization"]
    return values[0].decode("latin-1") if len(values) == 1 else None


class MetricsMiddleware:
    """Counts every request of ``routes_of`` and serves ``GET /metrics`` behind ``check``.

    Args:
        app: The wrapped application (the rest of the middleware stack).
        metrics: Where the counts go.
        routes_of: The FastAPI app whose route templates name the requests.
        check: Admits the ``/metrics`` caller's ``Authorization`` header (else a 401).
    """

    def __init__(
        self, app: ASGIApp, *, metrics: ServiceMetrics, routes_of: FastAPI, check: TokenCheck
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._routes_of = routes_of
        self._check = check
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None

    def _templates(self) -> list[tuple[re.Pattern[str], str]]:
        """Every route template of the app as a path pattern (built once, on first use)."""
        if self._patterns is None:
            schema_paths = self._routes_of.openapi().get("paths", {})
            self._patterns = [(_pattern(t), t) for t in schema_paths]
        return self._patterns

    def _template(self, scope: Scope) -> str:
        """The template of the route that answered, else of the route the path names."""
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        for pattern, template in self._templates():  # refused before routing (401)
            if pattern.fullmatch(str(scope["path"])):
                return template
        return UNMATCHED_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``/metrics``, or pass the request on and count it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # what a crash without a response start amounts to
        counted = [False]

        def count() -> None:
            if counted[0]:
                return
            counted[0] = True
            route = METRICS_PATH if scope["path"] == METRICS_PATH else self._template(scope)
            self._metrics.observe(
                route,
                str(scope["method"]),
                status[0],
                time.perf_counter() - started,
                _authorization(scope),
            )

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                count()  # before the client has the whole answer: a scrape after it sees it
            await send(message)

        try:
            if scope["path"] == METRICS_PATH:
                await self._serve(scope, receive, counting_send)
            else:
                await self.app(scope, receive, counting_send)
        finally:
            count()  # an answer that never finished (a crash, a client gone)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        if scope["method"] not in ("GET", "HEAD"):
            response = error_response(
                405,
                f"{scope['method']} {METRICS_PATH} is not a route",
                expected=f"GET {METRICS_PATH}",
                fix="scrape with GET",
                headers={"Allow": "GET, HEAD"},
            )
        else:
            try:
                self._check(_authorization(scope))
            except ApiError as err:
                response = error_response(
                    err.status, err.problem, expected=err.expected, fix=err.fix, headers=err.headers
                )
            else:
                body = await run_in_threadpool(self._metrics.exposition)  # reads the key store
                response = Response(body, media_type=CONTENT_TYPE_LATEST)
        await response(scope, receive, send)


def install_metrics(
    app: FastAPI,
    *,
    namespace: str,
    check: TokenCheck,
    answered_routes: Collection[tuple[str, str]] = (),
    collectors: Iterable[Collector] = (),
) -> ServiceMetrics:
    """Add ``/metrics`` and request counting to ``app``; call it after every other middleware.

    The metrics are also kept on ``app.state.metrics``.
    """
    metrics = ServiceMetrics(namespace, frozenset(answered_routes))
    for collector in collectors:
        metrics.registry.register(collector)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes_of=app, check=check)
    app.state.metrics = metrics
    logger.debug("metrics: %s on %s", namespace, METRICS_PATH)
    return metrics
