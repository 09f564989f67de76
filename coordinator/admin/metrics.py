"""Prometheus metrics of the admin API (``/metrics``) and its health check (``/healthz``).

Every app has its own :class:`prometheus_client.CollectorRegistry` (never the process-wide
one, so two apps in one process, as in the tests, count apart):

The registry is ``app.state.metrics`` (:func:`coordinator.admin.app.create_admin_app`).

- ``fedembed_admin_requests_total{route,method,status}``: answers by route template
  (``/v1/tokens/{token_id}``, never the concrete path: no ids in labels; a path no route
  matches is ``unmatched``);
- ``fedembed_admin_request_duration_seconds{route,method}``: latency histogram;
- ``fedembed_admin_denials_total{route,method,status}``: 401 and 403 answers;
- read from the consortium home on every scrape (:class:`FederationCollector`): per run
  ``fedembed_federation_rounds{run}``, ``fedembed_federation_rounds_released{run}``,
  ``fedembed_federation_refusals{run}`` and
  ``fedembed_federation_member_epsilon{run,member}`` (each member's sample-level epsilon
  in that run, from ``runs/<run>/federation_ledger.json``); missing or unreadable files
  are skipped, never an error.

Who may read ``/metrics``: any live admin API token, or the separate
``FEDEMBED_ADMIN_METRICS_TOKEN`` that reads ``/metrics`` and nothing else (give that one
to a Prometheus scraper: ``authorization: {credentials_file: ...}`` in its scrape
config). Epsilons and run names are the consortium's business, so the page is not
public. ``/healthz`` needs no token and says only that the service is up.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator.admin.deps import AuthError, PartsDep
from coordinator.admin.home import ConsortiumHome

__all__ = ["AdminMetrics", "FederationCollector", "Health", "MetricsMiddleware", "router"]

logger = logging.getLogger(__name__)

LEDGER_FILE = "federation_ledger.json"
UNMATCHED = "unmatched"
_MAX_RUNS = 1000  # a scrape reads at most this many run folders


class FederationCollector(Collector):
    """Rounds, refusals and epsilons of every run under ``<home>/runs``, read on scrape."""

    def __init__(self, home: ConsortiumHome) -> None:
        self.home = home

    def _ledgers(self) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            folders = sorted(p for p in self.home.runs.iterdir() if p.is_dir())[:_MAX_RUNS]
        except OSError:
            return
        for folder in folders:
            try:
                document = json.loads((folder / LEDGER_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(document, dict):
                yield folder.name, document

    def collect(self) -> Iterator[Metric]:
        """One sample per run (and per member for epsilon)."""
        rounds = GaugeMetricFamily(
            "fedembed_federation_rounds", "Rounds a run has recorded.", labels=["run"]
        )
        released = GaugeMetricFamily(
            "fedembed_federation_rounds_released",
            "Rounds whose aggregate was released.",
            labels=["run"],
        )
        refusals = GaugeMetricFamily(
            "fedembed_federation_refusals", "Node refusals a run has recorded.", labels=["run"]
        )
        epsilon = GaugeMetricFamily(
            "fedembed_federation_member_epsilon",
            "Each member's sample-level epsilon spent in the run (fellow-member view).",
            labels=["run", "member"],
        )
        for run, ledger in self._ledgers():
            entries = ledger.get("rounds")
            entries = entries if isinstance(entries, list) else []
            rounds.add_metric([run], len(entries))
            released.add_metric(
                [run], sum(1 for e in entries if isinstance(e, dict) and e.get("released"))
            )
            refused = ledger.get("refusals")
            refusals.add_metric([run], len(refused) if isinstance(refused, list) else 0)
            sample = ledger.get("sample_level")
            spent = sample.get("per_node_epsilon") if isinstance(sample, dict) else None
            for member, value in (spent if isinstance(spent, dict) else {}).items():
                if isinstance(value, int | float) and math.isfinite(value):
                    epsilon.add_metric([run, str(member)], float(value))
        yield from (rounds, released, refusals, epsilon)

    def describe(self) -> list[Metric]:
        """Nothing up front: the families are read from the home folder on scrape."""
        return []


class AdminMetrics:
    """The app's registry: request counters, latencies, denials and the federation's."""

    def __init__(self, home: ConsortiumHome) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fedembed_admin_requests",
            "Admin API answers.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fedembed_admin_request_duration_seconds",
            "Admin API answer latency.",
            ["route", "method"],
            registry=self.registry,
        )
        self.denials = Counter(
            "fedembed_admin_denials",
            "Admin API requests refused for a missing, invalid or too weak token.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.registry.register(FederationCollector(home))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answer."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if status in (401, 403):
            self.denials.labels(route, method, str(status)).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware: count every HTTP answer by route template, method and status."""

    def __init__(self, app: ASGIApp, *, metrics: AdminMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and count its answer (500 when the app raised)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe(route, str(scope["method"]), status, time.perf_counter() - start)


class Health(BaseModel):
    """The health answer: up, nothing more."""

    status: str = "ok"


router = APIRouter(tags=["service"])


def _metrics_caller(parts: PartsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Admit the metrics token or any live admin API token."""
    scheme, _, secret = (authorization or "").partition(" ")
    secret = secret.strip() if scheme.lower() == "bearer" else ""
    dedicated = parts.settings.metrics_token
    if secret and dedicated is not None:
        expected = dedicated.get_secret_value().encode("utf-8")
        if hmac.compare_digest(secret.encode("utf-8"), expected):
            return
    if secret and parts.tokens.authenticate(secret) is not None:
        return
    raise AuthError(
        "no valid token for /metrics",
        status=401,
        expected="Authorization: Bearer <token>: FEDEMBED_ADMIN_METRICS_TOKEN or any live "
        "admin API token",
        fix="give the scraper the metrics token (a credentials file in its scrape config)",
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def metrics(
    request: Request, parts: PartsDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus metrics: requests, latencies, denials, rounds, refusals, epsilon spent."""
    _metrics_caller(parts, authorization)
    registry: AdminMetrics = request.app.state.metrics
    return Response(content=registry.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: no token needed; says nothing about the consortium."""
    return Health()
