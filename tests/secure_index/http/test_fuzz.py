"""Schemathesis fuzzes both HTTP APIs (gateway and internal store) over real sockets:
whatever it sends, no answer is a 5xx."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from conftest import Deployment, provision
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from secure_index.service.local_service import LocalIndexService, start_index_service

EXAMPLES = 30


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    service = start_index_service(
        tmp_path_factory.mktemp("fuzz") / "gw",
        kek=secrets.token_bytes(32),
        extra_args=("--no-text-queries",),
    )
    try:
        yield provision(service)
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


gateway_api = schemathesis.pytest.from_fixture("gateway_schema")
store_api = schemathesis.pytest.from_fixture("store_schema")


def _token_for(case: schemathesis.Case, dep: Deployment) -> str:
    path, method = case.operation.path, case.operation.method.upper()
    if path.startswith("/v1/admin"):
        return dep.service.admin_token
    if path.endswith("/documents") or path.endswith("/documents/delete") or method == "PUT":
        return dep.node_token
    return dep.partner_token


@gateway_api.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_gateway_never_answers_5xx(case: schemathesis.Case, gateway: Deployment) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {_token_for(case, gateway)}"},
        checks=[not_a_server_error],
    )


@store_api.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_store_never_answers_5xx(
    case: schemathesis.Case, store: tuple[LocalIndexService, str]
) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {store[1]}"}, checks=[not_a_server_error]
    )


def test_the_schema_lists_every_client_error(gateway: Deployment) -> None:
    import httpx

    schema = httpx.get(f"{gateway.service.url}/openapi.json").json()
    query = schema["paths"]["/v1/collections/{collection}/query"]["post"]["responses"]
    assert {"401", "403", "404", "413", "422", "429"} <= set(query)
    _ = Path
