"""Start the index services: gateway and store in one process, or either alone.

``role=all`` runs the gateway over an in-process :class:`IndexStore`; ``role=store``
runs only the encrypted store's internal API (it may live on an untrusted host: in DCPE
collections it only sees ciphertext vectors); ``role=gateway`` runs the partner/node API
against a remote store.

With ``--tls-cert``/``--tls-key`` every role serves HTTPS (:mod:`.service_tls`); the
gateway checks its TLS link to the store at start and refuses to run against a store
whose certificate it does not trust.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from crypto.ckks_search_key import load_ckks_key
from index_client.errors import GatewayError
from index_client.routes import HEALTH
from index_client.transport import TlsTrustError
from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KekProvider, load_keks
from secure_index.service.audit_log import AuditLog
from secure_index.service.ckks_backend import CkksBackend, RemoteCkksStore
from secure_index.service.credentials import CredentialStore
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.gateway_ckks import CkksGatewaySearch
from secure_index.service.promoted_adapter import ADAPTERS_DIR
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.service_tls import check_server_tls
from secure_index.service.settings import STORE_DIR, ServiceRole, ServiceSettings
from secure_index.service.store_app import create_store_app
from secure_index.service.store_backend import RemoteStore, StoreBackend, store_error
from secure_index.storage.state_anchor import resolve_anchor_path

__all__ = ["ServiceBundle", "build_service", "serve"]

logger = logging.getLogger(__name__)

# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are all of that kind).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


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
    if settings.tls_cert is not None and settings.tls_key is not None:
        check_server_tls(settings.tls_cert, settings.tls_key)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store: IndexStore | None = None
    ckks_store: CkksCollections | None = None
    keks: KekProvider | None = None
    if settings.role in (ServiceRole.ALL, ServiceRole.STORE):
        keks = load_keks(key_file=settings.kek_file)
        store_root = settings.data_dir / STORE_DIR
        store = IndexStore(
            store_root,
            keks=keks,
            tenant=settings.tenant,
            snapshot_records=settings.snapshot_records,
            snapshot_interval_s=settings.snapshot_interval_s,
            state_anchor=resolve_anchor_path(
                settings.state_anchor, key_file=settings.kek_file, store_root=store_root
            ),
        )
        closers.append(store.close)
        ckks_store = store.ckks_collections()  # one name space and anchor for every kind
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
            settings.store_url,
            token=settings.store_token.get_secret_value(),
            timeout_s=300.0,
            verify=settings.store_ca if settings.store_ca is not None else True,
        )
        closers.append(remote.close)
        _check_store_link(remote)
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
        encoder_backend=settings.encoder_backend,
    )
    app = create_gateway_app(
        backend=backend,
        credentials=CredentialStore(settings.credentials_path),
        audit=AuditLog(  # its head anchor is keyed: the gateway needs a KEK of its own
            settings.audit_path, keks=keks or load_keks(key_file=settings.kek_file)
        ),
        embedder=embedder,
        admin_token=settings.admin_token.get_secret_value(),
        limits=GatewayLimits(
            max_body_bytes=settings.max_body_bytes,
            max_batch=settings.max_batch,
            max_k=settings.max_k,
            max_block_bytes=settings.max_block_bytes,
        ),
        ckks=ckks,
        suspend_on_probing=settings.suspend_on_probing,
        adapter_dir=settings.data_dir / ADAPTERS_DIR,
    )
    return ServiceBundle(app, closers)


def _check_store_link(remote: RemoteStore) -> None:
    """Refuse a store whose TLS certificate is not trusted (a store not up yet is fine).

    Raises:
        StorageError: With the TLS failure and its fix; the handshake failed before the
            store token was sent.
    """
    try:
        remote.transport.send(HEALTH)
    except TlsTrustError as exc:
        raise store_error(exc) from None
    except GatewayError as exc:
        logger.warning(
            "serve: the store at %s does not answer yet (%s)",
            remote.transport.base_url,
            exc.problem,
        )


def serve(settings: ServiceSettings, *, log_level: str = "info") -> None:
    """Run the service until SIGINT/SIGTERM, then fold logs and release the directory."""
    bundle = build_service(settings)
    try:
        tls = settings.tls_cert is not None and settings.tls_key is not None
        config = uvicorn.Config(
            bundle.app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            access_log=False,  # the audit log records requests; no query strings in logs
            ssl_certfile=settings.tls_cert if tls else None,
            ssl_keyfile=settings.tls_key if tls else None,
            ssl_ciphers=TLS12_CIPHERS,
        )
        logger.info(
            "serve: %s on %s://%s:%d (tenant %s)",
            settings.role,
            "https" if tls else "http",
            settings.host,
            settings.port,
            settings.tenant,
        )
        uvicorn.Server(config).run()
    finally:
        bundle.close()
        logger.info("serve: stopped")
