"""The admin API's FastAPI app: core parts, every domain's router, errors, metrics.

Domains: each ``routes_<domain>`` module exposes ``router`` (an ``APIRouter`` under
``/v1/<domain>``) and ``install(app, settings)`` (puts the domain's service on
``app.state``). :func:`create_admin_app` installs them in :data:`DOMAINS` order.
"""

from __future__ import annotations

from types import ModuleType

from fastapi import FastAPI

from coordinator.admin.deps import AdminParts
from coordinator.admin.settings import AdminSettings

__all__ = ["DOMAINS", "create_admin_app"]

DOMAINS: tuple[ModuleType, ...] = (
    # each domain adds its routes module here
)


def create_admin_app(settings: AdminSettings, *, parts: AdminParts) -> FastAPI:
    """The admin API over ``parts`` (tokens, audit trail) and every domain in DOMAINS."""
    app = FastAPI(title="fedembed consortium admin API", version="1")
    app.state.admin = parts
    for domain in DOMAINS:
        domain.install(app, settings)
        app.include_router(domain.router)
    return app
