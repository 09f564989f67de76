"""Real HTTP servers for the admin API tests: an app behind uvicorn on loopback, in a thread
of the test process, and a real query gateway served so."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import CredentialStore
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.query_embedder import QueryEmbedder
from tests.serving import serving


@contextmanager
def serving_gateway(folder: Path, admin_token: str) -> Iterator[str]:
    """A real query gateway (key store, audit log, encrypted store in ``folder``) served."""
    keks = KeyFileKeks.create(folder / "kek.json")
    store = IndexStore(folder / "store", keks=keks, tenant="t", background=False)
    app = create_gateway_app(
        backend=store,
        credentials=CredentialStore(folder / "credentials.sqlite"),
        audit=AuditLog(folder / "audit" / "audit.jsonl", keks=keks),
        embedder=QueryEmbedder(None),
        admin_token=admin_token,
        limits=GatewayLimits(max_body_bytes=1 << 20, max_batch=100, max_k=100),
    )
    try:
        with serving(app) as url:
            yield url
    finally:
        store.close()
