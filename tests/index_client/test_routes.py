"""The routes are defined once: the gateway and the store serve exactly the clients' routes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from crypto.ckks_search_key import CkksSearchKey
from index_client import routes
from index_client.routes import Route
from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import CredentialStore
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.gateway_ckks import CkksGatewaySearch
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.store_app import create_store_app

DIM = 8


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[IndexStore, CkksCollections]]:
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    store = IndexStore(tmp_path / "store", keks=keks, tenant="t", background=False)
    try:
        yield store, CkksCollections(tmp_path / "store" / "ckks", keks=keks, tenant="t")
    finally:
        store.close()


def _gateway(tmp_path: Path, store: IndexStore, ckks: CkksCollections | None) -> FastAPI:
    search = CkksGatewaySearch(CkksSearchKey.generate(dimension=DIM), ckks) if ckks else None
    return create_gateway_app(
        backend=store,
        credentials=CredentialStore(tmp_path / "credentials.sqlite"),
        audit=AuditLog(
            tmp_path / "audit" / "audit.jsonl", keks=KeyFileKeks.load(tmp_path / "kek.json")
        ),
        embedder=QueryEmbedder(None),
        admin_token="admin-token",
        limits=GatewayLimits(max_body_bytes=1 << 20, max_batch=10, max_k=10),
        ckks=search,
    )


def _served(app: FastAPI) -> set[Route]:
    """Every (method, path) the app answers, from its OpenAPI schema."""
    return {
        Route(method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }


def test_the_gateway_serves_exactly_the_gateway_routes(
    tmp_path: Path, parts: tuple[IndexStore, CkksCollections]
) -> None:
    # Prepare
    store, ckks = parts
    # Execute
    with_ckks = _served(_gateway(tmp_path, store, ckks))
    without_ckks = _served(_gateway(tmp_path, store, None))
    # Assert
    assert with_ckks == set(routes.GATEWAY_ROUTES)
    ckks_only = {
        routes.CKKS_PUBLIC_CONTEXT,
        routes.PUT_BLOCK,
        routes.DELETE_BLOCK,
        routes.CREATE_CKKS_COLLECTION,
    }
    assert without_ckks == set(routes.GATEWAY_ROUTES) - ckks_only


def test_the_store_serves_exactly_the_store_routes(
    parts: tuple[IndexStore, CkksCollections],
) -> None:
    # Prepare
    store, ckks = parts
    # Execute
    with_ckks = _served(create_store_app(store, token="t", max_body_bytes=1 << 20, ckks=ckks))
    without_ckks = _served(create_store_app(store, token="t", max_body_bytes=1 << 20))
    # Assert
    assert with_ckks == set(routes.STORE_ROUTES)
    assert without_ckks == set(routes.STORE_ROUTES) - set(routes.STORE_CKKS_ROUTES)


def test_gateway_and_store_routes_do_not_collide() -> None:
    gateway = {r.template for r in routes.GATEWAY_ROUTES} - {routes.HEALTH.template}
    store = {r.template for r in routes.STORE_ROUTES} - {routes.HEALTH.template}
    assert not gateway & store


def test_a_path_encodes_each_value_as_one_segment() -> None:
    assert routes.PUT_BLOCK.path(collection="claims", number=3) == "/v1/collections/claims/blocks/3"
    assert routes.REVOKE_CREDENTIAL.path(key_id="a/b c") == "/v1/admin/credentials/a%2Fb%20c"
    assert routes.HEALTH.path() == "/healthz"


@pytest.mark.parametrize(
    "values",
    [{}, {"collection": "c"}, {"collection": "c", "number": 1, "owner": "x"}],
)
def test_a_path_needs_exactly_its_parameters(values: dict[str, str | int]) -> None:
    with pytest.raises(ValueError, match="takes"):
        routes.PUT_BLOCK.path(**values)


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/v1/collections/claims/blocks/0", True),
        ("/v1/collections/c.d-e/blocks/12", True),
        ("/v1/collections/claims/blocks", False),
        ("/v1/collections/a/b/blocks/0", False),
        ("/v1/collections/claims/blocks/0/x", False),
    ],
)
def test_a_pattern_matches_the_concrete_paths_only(path: str, matches: bool) -> None:
    assert bool(re.fullmatch(routes.PUT_BLOCK.pattern, path)) is matches


def test_paths_pattern_matches_any_of_its_routes() -> None:
    pattern = routes.paths_pattern(routes.STORE_CKKS_CREATE, routes.STORE_CKKS_PUT_BLOCK)
    assert re.fullmatch(pattern, "/internal/v1/ckks")
    assert re.fullmatch(pattern, "/internal/v1/ckks/c/blocks/node-a/0")
    assert not re.fullmatch(pattern, "/internal/v1/ckks/c/score")
