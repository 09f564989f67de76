"""Schemathesis fuzzes both HTTP APIs (gateway and internal store) over real sockets:
whatever it sends, no answer is a 5xx."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from index_client import routes
from index_client.routes import Route
from secure_index.service.local_service import LocalIndexService, start_index_service

EXAMPLES = 30


Deployment = Any


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, provision_deployment: Callable[..., Deployment]
) -> Iterator[Deployment]:
    service = start_index_service(
        tmp_path_factory.mktemp("fuzz") / "gw",
        kek=secrets.token_bytes(32),
        extra_args=("--no-text-queries",),
    )
    try:
        yield provision_deployment(service)
    finally:
        service.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalIndexService, str]]:
    token = secrets.token_urlsafe(24)
    service = start_index_service(
        tmp_path_factory.mktemp("fuzz") / "store",
        kek=secrets.token_bytes(32),
        extra_args=("--role", "store"),
        env={"FEDEMBED_INDEX_STORE_TOKEN": token},
    )
    try:
        yield service, token
    finally:
        service.stop()


@pytest.fixture(scope="module")
def gateway_schema(gateway: Deployment) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{gateway.service.url}/openapi.json")


@pytest.fixture(scope="module")
def store_schema(store: tuple[LocalIndexService, str]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{store[0].url}/openapi.json")


def _fuzz(schema: schemathesis.BaseSchema, token_for: Callable[[schemathesis.Case], str]) -> int:
    """Run every operation's generated cases against the live server; return cases sent.

    (schemathesis' pytest plugin does not run on pytest 9, so the operations' Hypothesis
    strategies are driven directly; the checks are the same.)
    """
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            nonlocal sent
            sent += 1
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token_for(case)}"},
                checks=[not_a_server_error],
            )

        run()
    return sent


ADMIN_ROUTES = {
    routes.CREATE_COLLECTION,
    routes.ADMIN_COLLECTIONS,
    routes.SNAPSHOT,
    routes.CREATE_CKKS_COLLECTION,
    routes.ISSUE_CREDENTIAL,
    routes.LIST_CREDENTIALS,
    routes.REVOKE_CREDENTIAL,
}
NODE_ROUTES = {
    routes.UPSERT_DOCUMENTS,
    routes.DELETE_DOCUMENTS,
    routes.CKKS_PUBLIC_CONTEXT,
    routes.PUT_BLOCK,
    routes.DELETE_BLOCK,
}


def _token_for(case: schemathesis.Case, dep: Deployment) -> str:
    route = Route(case.operation.method.upper(), case.operation.path)
    if route in ADMIN_ROUTES:
        return str(dep.service.admin_token)
    if route in NODE_ROUTES:
        return str(dep.node_token)
    return str(dep.partner_token)


def test_gateway_never_answers_5xx(
    gateway_schema: schemathesis.BaseSchema, gateway: Deployment
) -> None:
    sent = _fuzz(gateway_schema, lambda case: _token_for(case, gateway))
    assert sent >= 100


def test_store_never_answers_5xx(
    store_schema: schemathesis.BaseSchema, store: tuple[LocalIndexService, str]
) -> None:
    sent = _fuzz(store_schema, lambda case: store[1])
    assert sent >= 50


def test_the_schema_lists_every_client_error(gateway: Deployment) -> None:
    import httpx

    schema = httpx.get(f"{gateway.service.url}/openapi.json").json()
    query = schema["paths"][routes.QUERY.template][routes.QUERY.method.lower()]["responses"]
    assert {"401", "403", "404", "413", "422", "429"} <= set(query)
