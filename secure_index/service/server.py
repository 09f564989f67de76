"""Start the index services: gateway and store in one process, or either alone.

``role=all`` runs the gateway over an in-process :class:`IndexStore`; ``role=store``
runs only the encrypted store's internal API (it may live on an untrusted host: in DCPE
collections it only sees ciphertext vectors); ``role=gateway`` runs the partner/node API
against a remote store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from crypto.ckks_search_key import load_ckks_key
from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.index_store import IndexStore
from secure_index.sealing import load_keks
from secure_index.service.audit_log import AuditLog
from secure_index.service.ckks_backend import CkksBackend, RemoteCkksStore
from secure_index.service.credentials import CredentialStore
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.gateway_ckks import CkksGatewaySearch
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.settings import CKKS_DIR, STORE_DIR, ServiceRole, ServiceSettings
from secure_index.service.store_app import create_store_app
from secure_index.service.store_backend import RemoteStore, StoreBackend

__all__ = ["ServiceBundle", "build_service", "serve"]

logger = logging.getLogger(__name__)


@dataclass
class ServiceBundle:
    """The ASGI app of one role plus what must be closed when it stops."""

    app: FastAPI
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close stores and clients (folds pending logs into a snapshot)."""
        for close in reversed(self.closers):
            close()


def build_service(settings: ServiceSettings) -> ServiceBundle:
    """Build the app of ``settings.role`` over real parts."""
    closers: list[Callable[[], None]] = []
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store: IndexStore | None = None
    ckks_store: CkksCollections | None = None
    if settings.role in (ServiceRole.ALL, ServiceRole.STORE):
        keks = load_keks(key_file=settings.kek_file)
        store = IndexStore(
            settings.data_dir / STORE_DIR,
            keks=keks,
            tenant=settings.tenant,
            snapshot_records=settings.snapshot_records,
            snapshot_interval_s=settings.snapshot_interval_s,
        )
        closers.append(store.close)
        ckks_store = CkksCollections(
            settings.data_dir / STORE_DIR / CKKS_DIR, keks=keks, tenant=settings.tenant
        )
    if settings.role is ServiceRole.STORE:
        assert store is not None
        assert settings.store_token is not None
        app = create_store_app(
            store,
            token=settings.store_token.get_secret_value(),
            max_body_bytes=settings.max_body_bytes,
            ckks=ckks_store,
            max_block_bytes=settings.max_block_bytes,
        )
        return ServiceBundle(app, closers)
    backend: StoreBackend
    ckks_backend: CkksBackend
    if store is not None:
        assert ckks_store is not None
        backend, ckks_backend = store, ckks_store
    else:
        assert settings.store_url is not None
        assert settings.store_token is not None
        remote = RemoteStore(
            settings.store_url, token=settings.store_token.get_secret_value(), timeout_s=300.0
        )
        closers.append(remote.close)
        backend, ckks_backend = remote, RemoteCkksStore(remote.transport)
    ckks = None
    if settings.ckks_key_file is not None:
        key = load_ckks_key(settings.ckks_key_file)
        ckks = CkksGatewaySearch(key, ckks_backend)
    embedder = QueryEmbedder.load(
        model_path=settings.model_path,
        adapter_path=settings.adapter_path,
        dcpe_key_file=settings.dcpe_key_file,
        text_queries=settings.text_queries,
    )
    app = create_gateway_app(
        backend=backend,
        credentials=CredentialStore(settings.credentials_path),
        audit=AuditLog(settings.audit_path),
        embedder=embedder,
        admin_token=settings.admin_token.get_secret_value(),
        limits=GatewayLimits(
            max_body_bytes=settings.max_body_bytes,
            max_batch=settings.max_batch,
            max_k=settings.max_k,
            max_block_bytes=settings.max_block_bytes,
        ),
        ckks=ckks,
    )
    return ServiceBundle(app, closers)


def serve(settings: ServiceSettings, *, log_level: str = "info") -> None:
    """Run the service until SIGINT/SIGTERM, then fold logs and release the directory."""
    bundle = build_service(settings)
    try:
        config = uvicorn.Config(
            bundle.app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            access_log=False,  # the audit log records requests; no query strings in logs
        )
        logger.info(
            "serve: %s on http://%s:%d (tenant %s)",
            settings.role,
            settings.host,
            settings.port,
            settings.tenant,
        )
        uvicorn.Server(config).run()
    finally:
        bundle.close()
        logger.info("serve: stopped")
