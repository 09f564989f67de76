"""Binds the routes of :mod:`index_client.routes` to the services' ``APIRouter`` objects.

The gateway's and the store's handlers are declared with ``@handle(router, routes.X)``,
so the method and path of every route come from the one definition the clients use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.params import Depends

from index_client.routes import Route

__all__ = ["handle"]

F = TypeVar("F", bound=Callable[..., Any])


def handle(
    router: APIRouter,
    route: Route,
    *,
    status_code: int | None = None,
    dependencies: Sequence[Depends] | None = None,
) -> Callable[[F], F]:
    """A decorator that adds the handler of ``route`` (its method, its path) to ``router``."""
    return router.api_route(
        route.template,
        methods=[route.method],
        status_code=status_code,
        dependencies=dependencies,
    )
