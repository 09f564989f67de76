"""Real HTTP servers for the admin API tests: an app behind uvicorn on loopback, in a thread
of the test process, and a real query gateway served so."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from deployment.flower_processes import free_port
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import CredentialStore
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.query_embedder import QueryEmbedder


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL, stops on exit."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            thread.join(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


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
