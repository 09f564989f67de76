"""The gateway's parts are dependencies: overriding one swaps it for every route."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index_client.admin_client import AdminClient
from index_client.gateway_client import GatewayClient
from secure_index.index.collection_spec import CollectionSpec
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import CredentialRole, CredentialStore
from secure_index.service.deps import get_store
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.store_backend import StoreBackend
from tests.serving import serving

DIM = 4
ADMIN_TOKEN = "operator-token-of-at-least-32-characters"


def test_an_overridden_store_answers_every_route(tmp_path: Path) -> None:
    # Prepare: the app's own store, and a second real store that already holds documents
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    own = IndexStore(tmp_path / "own", keks=keks, tenant="t", background=False)
    other = IndexStore(tmp_path / "other", keks=keks, tenant="t", background=False)
    other.create_collection(CollectionSpec("claims", DIM))
    other.upsert("claims", ["d0", "d1", "d2"], np.eye(DIM, dtype=np.float32)[:3], owner="node-b")
    credentials = CredentialStore(tmp_path / "credentials.sqlite")
    _, token = credentials.create(
        role=CredentialRole.PARTNER, name="p", scopes=["claims"], vector_queries=True
    )
    app = create_gateway_app(
        backend=own,
        credentials=credentials,
        audit=AuditLog(tmp_path / "audit" / "audit.jsonl", keks=keks),
        embedder=QueryEmbedder(None),
        admin_token=ADMIN_TOKEN,
        limits=GatewayLimits(max_body_bytes=1 << 20, max_batch=100, max_k=100),
    )

    def use_other() -> StoreBackend:
        return other

    app.dependency_overrides[get_store] = use_other
    try:
        # Execute
        with serving(app) as url:
            with GatewayClient(url, token) as partner:
                found = partner.query("claims", vector=[0.0, 1.0, 0.0, 0.0], k=2)
                described = partner.describe("claims")
            with AdminClient(url, ADMIN_TOKEN) as admin:
                admin.create_collection("new", DIM)
                listed = [c.name for c in admin.collections()]
        # Assert: queries, descriptions and admin changes all went to the other store
        assert found.hits[0].doc_id == "d1"
        assert found.hits[0].owner == "node-b"
        assert described.documents == 3
        assert listed == ["claims", "new"]
        assert sorted(other.names()) == ["claims", "new"]
        assert own.names() == []
    finally:
        own.close()
        other.close()
