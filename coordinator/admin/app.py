"""The admin API's FastAPI app: core parts, every domain's router, errors, metrics.

Domains: each ``routes_<domain>`` module exposes ``router`` (an ``APIRouter`` under
``/v1/<domain>``) and ``install(app, settings)`` (puts the domain's service on
``app.state``). :func:`create_admin_app` installs them in :data:`DOMAINS` order, after the
error handlers (:mod:`coordinator.admin.http_errors`), the request metrics and the
``/metrics`` and ``/healthz`` routes (:mod:`coordinator.admin.metrics`).
"""

from __future__ import annotations

from types import ModuleType

from fastapi import FastAPI

from coordinator.admin import (
    metrics,
    routes_audit,
    routes_budgets,
    routes_members,
    routes_models,
    routes_partners,
    routes_runs,
    routes_tokens,
)
from coordinator.admin.console import routes_console
from coordinator.admin.deps import AdminParts
from coordinator.admin.http_errors import ERROR_RESPONSES, install_error_handlers
from coordinator.admin.metrics import AdminMetrics, MetricsMiddleware
from coordinator.admin.settings import AdminSettings

__all__ = ["DOMAINS", "create_admin_app"]

DOMAINS: tuple[ModuleType, ...] = (
    routes_tokens,
    routes_members,
    routes_runs,
    routes_models,
    routes_budgets,
    routes_partners,
    routes_audit,
    routes_console,  # the web console under /console (pages, not in the OpenAPI document)
    # each domain adds its routes module here
)


def create_admin_app(settings: AdminSettings, *, parts: AdminParts) -> FastAPI:
    """The admin API over ``parts`` (tokens, audit trail) and every domain in DOMAINS."""
    app = FastAPI(title="fedembed consortium admin API", version="1", responses=ERROR_RESPONSES)
    app.state.admin = parts
    install_error_handlers(app)
    app.state.metrics = AdminMetrics(settings.consortium)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(metrics.router)
    for domain in DOMAINS:
        domain.install(app, settings)
        app.include_router(domain.router)
    return app
