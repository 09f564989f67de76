"""Fixtures of the admin API tests: a consortium home, live tokens of every role, the app.

- ``admin_settings``: :class:`AdminSettings` over a fresh home in ``tmp_path`` (the trail
  key in ``<home>/admin/trail.key``, as on a first start);
- ``admin_home``: its :class:`ConsortiumHome`;
- ``admin_parts``: the real token store and audit trail (``build_parts``);
- ``admin_app``: :func:`create_admin_app` over them, every domain in ``DOMAINS``;
- ``admin_tokens``: role -> bearer secret, one live token per role (keys are
  :class:`AdminRole` members, which also match the plain strings ``"admin"`` ...);
- ``admin_auth``: role -> ``{"Authorization": "Bearer ..."}``;
- ``admin_client``: a ``fastapi.testclient.TestClient`` over ``admin_app``;
- ``admin_url``: ``admin_app`` behind a real uvicorn server on loopback, in a thread;
- ``consortium``: the home filled as :mod:`tests.coordinator.admin.console_home` fills it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coordinator.admin.app import create_admin_app
from coordinator.admin.deps import AdminParts
from coordinator.admin.home import ConsortiumHome
from coordinator.admin.server import build_parts
from coordinator.admin.settings import AdminSettings
from coordinator.admin.token_store import AdminTokenStore
from coordinator.admin.tokens import AdminRole
from tests.coordinator.admin.console_home import prepare_consortium
from tests.serving import serving


@pytest.fixture(autouse=True)
def as_a_server_app() -> None:
    """The admin API is no Flower ServerApp: no task identity (overrides the parent's)."""


@pytest.fixture
def admin_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AdminSettings:
    for variable in ("FEDEMBED_ADMIN_TRAIL_KEY", "FEDEMBED_ADMIN_METRICS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    return AdminSettings(home=home, port=0)


@pytest.fixture
def admin_home(admin_settings: AdminSettings) -> ConsortiumHome:
    return admin_settings.consortium


@pytest.fixture
def admin_parts(admin_settings: AdminSettings) -> AdminParts:
    return build_parts(admin_settings)


@pytest.fixture
def admin_tokens(admin_parts: AdminParts) -> dict[AdminRole, str]:
    store = admin_parts.tokens
    assert isinstance(store, AdminTokenStore)
    return {role: store.create(f"test-{role.value}", role)[1] for role in AdminRole}


@pytest.fixture
def admin_auth(admin_tokens: dict[AdminRole, str]) -> dict[AdminRole, dict[str, str]]:
    return {role: {"Authorization": f"Bearer {s}"} for role, s in admin_tokens.items()}


@pytest.fixture
def admin_app(admin_settings: AdminSettings, admin_parts: AdminParts) -> FastAPI:
    return create_admin_app(admin_settings, parts=admin_parts)


@pytest.fixture
def admin_client(admin_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(admin_app) as client:
        yield client


@pytest.fixture
def consortium(admin_settings: AdminSettings) -> dict[str, Any]:
    """A consortium home with members, runs, a model version and audit reports."""
    return prepare_consortium(admin_settings)


@pytest.fixture
def admin_url(admin_app: FastAPI) -> Iterator[str]:
    with serving(admin_app) as url:
        yield url
