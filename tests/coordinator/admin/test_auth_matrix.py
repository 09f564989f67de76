"""Every admin API route against every kind of caller: 401 and 403 exactly as the table says.

:data:`MINIMUM_ROLE` is the explicit table of every route (method, path template) and the
least role that may call it (``None``: public). The test fails when the app has a route
the table lacks (a new route must be placed in the table on purpose) or the table names
a route the app no longer has. Each route is then called by: no token, a well-formed but
unknown token, a revoked token, and a live auditor, operator and admin token. Missing,
unknown and revoked tokens get 401 (with ``WWW-Authenticate``), a too small role 403, a
sufficient role anything but 401/403; no answer is a server error (a 503 in the standard
body is the one 5xx allowed: a service the route relies on, such as the SuperLink, is not
running in this test).
"""

from __future__ import annotations

from collections.abc import Iterator

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from coordinator.admin.app import create_admin_app
from coordinator.admin.deps import AdminParts
from coordinator.admin.settings import AdminSettings
from coordinator.admin.token_store import AdminTokenStore
from coordinator.admin.tokens import AdminRole

ADMIN, OPERATOR, AUDITOR = AdminRole.ADMIN, AdminRole.OPERATOR, AdminRole.AUDITOR
MINIMUM_ROLE: dict[tuple[str, str], AdminRole | None] = {
    # service
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("GET", "/healthz"): None,
    ("GET", "/metrics"): AUDITOR,
    # tokens
    ("POST", "/v1/tokens"): ADMIN,
    ("GET", "/v1/tokens"): ADMIN,
    ("DELETE", "/v1/tokens/{token_id}"): ADMIN,
    # members
    ("GET", "/v1/members"): AUDITOR,
    ("GET", "/v1/members/{name}"): AUDITOR,
    ("POST", "/v1/members"): ADMIN,
    ("POST", "/v1/members/{name}/register"): ADMIN,
    ("POST", "/v1/members/{name}/revoke"): ADMIN,
    # runs
    ("POST", "/v1/runs"): OPERATOR,
    ("GET", "/v1/runs"): AUDITOR,
    ("GET", "/v1/runs/{name}"): AUDITOR,
    ("POST", "/v1/runs/{name}/stop"): OPERATOR,
    ("GET", "/v1/runs/{name}/logs"): AUDITOR,
    # models
    ("GET", "/v1/models"): AUDITOR,
    ("POST", "/v1/models/register"): OPERATOR,
    ("POST", "/v1/models/rollback"): OPERATOR,
    ("GET", "/v1/models/{version}"): AUDITOR,
    ("POST", "/v1/models/{version}/promote"): OPERATOR,
    # budgets
    ("GET", "/v1/budgets"): AUDITOR,
    ("POST", "/v1/budgets/plan"): AUDITOR,
    ("GET", "/v1/budgets/{member}"): AUDITOR,
    # partners
    ("POST", "/v1/partners"): ADMIN,
    ("GET", "/v1/partners"): AUDITOR,
    ("DELETE", "/v1/partners/{key_id}"): ADMIN,
    # audit
    ("GET", "/v1/audit/reports"): AUDITOR,
    ("GET", "/v1/audit/reports/{job}"): AUDITOR,
    ("GET", "/v1/audit/reports/{job}/verify"): AUDITOR,
    ("GET", "/v1/audit/reports/{job}/files/{name}"): AUDITOR,
    ("GET", "/v1/audit/jobs"): AUDITOR,
    ("GET", "/v1/audit/jobs/{job}"): AUDITOR,
    ("POST", "/v1/audit/jobs"): OPERATOR,
}
RANK = {AUDITOR: 1, OPERATOR: 2, ADMIN: 3}
NO_TOKEN, UNKNOWN, REVOKED = "no token", "unknown token", "revoked token"
CALLERS = (NO_TOKEN, UNKNOWN, REVOKED, AUDITOR, OPERATOR, ADMIN)
PATH_VALUE = "000000000000"  # a valid name, id and hex token id that names nothing


CONSOLE = "/console"
"""The web console signs in with a cookie and redirects to its login page; its own sign-in
matrix is in test_console.py (every console route public by design or tested for sign-in)."""


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path template) of the API (HEAD, added to GET, and the console left out)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # lazily included routers
    routes = flatten(app.routes) if flatten is not None else app.routes
    return {
        (method, route.path)
        for route in routes
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD" and not route.path.startswith(CONSOLE)
    }


def _url(template: str) -> str:
    url = template
    while "{" in url:
        start, end = url.index("{"), url.index("}")
        url = url[:start] + PATH_VALUE + url[end + 1 :]
    return url


@pytest.fixture
def callers(admin_parts: AdminParts, admin_tokens: dict[AdminRole, str]) -> dict[str, str | None]:
    store = admin_parts.tokens
    assert isinstance(store, AdminTokenStore)
    token, revoked = store.create("gone", ADMIN)
    store.revoke(token.token_id)
    unknown = "fea_" + "0" * 12 + "." + "A" * 43
    return {NO_TOKEN: None, UNKNOWN: unknown, REVOKED: revoked, **admin_tokens}


@pytest.fixture
def client(admin_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(admin_app, raise_server_exceptions=False) as client:
        yield client


def test_the_table_names_every_route_of_the_app(admin_app: FastAPI) -> None:
    routes = _routes(admin_app)
    missing = sorted(routes - set(MINIMUM_ROLE))
    stale = sorted(set(MINIMUM_ROLE) - routes)

    assert not missing, f"routes without a minimum role in MINIMUM_ROLE: {missing}"
    assert not stale, f"MINIMUM_ROLE names routes the app does not have: {stale}"


def _expected(minimum: AdminRole | None, caller: str) -> int | None:
    """401, 403, or None (neither)."""
    if minimum is None:
        return None
    if caller in (NO_TOKEN, UNKNOWN, REVOKED):
        return 401
    return 403 if RANK[AdminRole(caller)] < RANK[minimum] else None


def test_every_route_refuses_exactly_the_callers_the_table_refuses(
    admin_app: FastAPI, client: TestClient, callers: dict[str, str | None]
) -> None:
    # Execute
    wrong: list[str] = []
    for method, template in sorted(_routes(admin_app) & set(MINIMUM_ROLE)):
        for caller in CALLERS:
            secret = callers[caller]
            headers = {"Authorization": f"Bearer {secret}"} if secret else {}
            r = client.request(method, _url(template), headers=headers)
            expected = _expected(MINIMUM_ROLE[method, template], caller)
            denied = r.status_code if r.status_code in (401, 403) else None
            server_error = r.status_code >= 500 and not (
                r.status_code == 503 and "problem" in r.json().get("error", {})
            )
            if denied != expected or server_error:
                wrong.append(f"{method} {template} by {caller}: {r.status_code} {r.text[:120]}")
            elif denied == 401 and not r.headers.get("WWW-Authenticate", "").startswith("Bearer"):
                wrong.append(f"{method} {template} by {caller}: 401 without WWW-Authenticate")
            elif denied is not None and set(r.json()["error"]) != {"problem", "expected", "fix"}:
                wrong.append(f"{method} {template} by {caller}: not the standard error body")
    # Assert
    assert wrong == []


def test_the_metrics_token_reads_metrics_and_nothing_else(
    admin_settings: AdminSettings, admin_parts: AdminParts
) -> None:
    # Prepare
    scrape = SecretStr("scrape-" + "x" * 32)
    settings = admin_settings.model_copy(update={"metrics_token": scrape})
    parts = AdminParts(settings=settings, tokens=admin_parts.tokens, trail=admin_parts.trail)
    app = create_admin_app(settings, parts=parts)
    scraper = {"Authorization": "Bearer scrape-" + "x" * 32}
    # Execute
    with TestClient(app) as client:
        metrics = client.get("/metrics", headers=scraper)
        tokens = client.get("/v1/tokens", headers=scraper)
        wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-nope"})
    # Assert
    assert metrics.status_code == 200
    assert "fedembed_admin_requests_total" in metrics.text
    assert tokens.status_code == 401
    assert wrong.status_code == 401
