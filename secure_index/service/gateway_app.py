"""The query gateway (FastAPI): partner queries, node uploads, admin, audit.

Partners call ``POST /v1/collections/{c}/query`` with a scoped API key and get document
ids, owning nodes and scores, never vectors or text. Nodes call ``PUT
/v1/collections/{c}/documents`` with their own key (idempotent batch upserts of
protected vectors). Every decision, allowed or denied, is appended to the hash-chained
audit log. Client mistakes are 401/403/404/413/422/429 with a body that says what was
wrong, what was expected and how to fix it.

This module assembles the app from its routers (each an ``APIRouter``):
:mod:`secure_index.service.gateway_data_routes` (health, query, upload, delete,
collection info), :mod:`secure_index.service.gateway_admin_routes` (collections,
snapshots, keys) and :mod:`secure_index.service.gateway_ckks_routes` (CKKS collections,
when the gateway holds a CKKS key). The routers take the gateway's parts, kept on
``app.state.gateway``, through the dependencies of :mod:`secure_index.service.deps`;
authentication and authorisation are :mod:`secure_index.service.gateway_access`, and
:mod:`secure_index.service.auth_first` checks the credential before any body is read.
"""

import logging
from pathlib import Path

from fastapi import FastAPI

from index_client import routes
from secure_index.service.audit_log import AuditLog
from secure_index.service.auth_first import AuthenticateFirst, public_paths
from secure_index.service.credentials import CredentialStore
from secure_index.service.deps import GatewayParts, gateway_header_check
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_admin_routes import admin_router
from secure_index.service.gateway_ckks import CkksGatewaySearch
from secure_index.service.gateway_ckks_routes import CKKS_UPLOAD_PATHS, ckks_router
from secure_index.service.gateway_data_routes import data_router, health_router
from secure_index.service.gateway_model_routes import model_router
from secure_index.service.http_errors import BodySizeLimit, install_error_handlers
from secure_index.service.metrics import (
    GATEWAY_NAMESPACE,
    KeyStateCollector,
    install_metrics,
    token_check,
)
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.rate_limit import RateLimiter
from secure_index.service.store_backend import StoreBackend

__all__ = ["create_gateway_app"]

logger = logging.getLogger(__name__)


def create_gateway_app(
    *,
    backend: StoreBackend,
    credentials: CredentialStore,
    audit: AuditLog,
    embedder: QueryEmbedder,
    admin_token: str,
    limits: GatewayLimits,
    limiter: RateLimiter | None = None,
    ckks: CkksGatewaySearch | None = None,
    suspend_on_probing: bool = True,
    adapter_dir: Path | None = None,
) -> FastAPI:
    """The gateway application over its (real) parts (CKKS collections with ``ckks``).

    ``suspend_on_probing``: whether a probing alert suspends the partner's key (else it
    is only logged and audited). ``adapter_dir``: where promoted adapters are kept; the
    adapter live there when the gateway stopped is served again (None: promotions last
    until the process ends).
    """
    app = FastAPI(
        title="fedembed query gateway",
        version="1",
        description=(
            "Semantic search over consortium members' documents. Results are document ids, "
            "owning nodes and scores: never vectors, never text."
        ),
    )
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=limits.max_body_bytes,
        large_paths=CKKS_UPLOAD_PATHS,
        large_max_bytes=limits.max_block_bytes,
    )
    app.state.gateway = GatewayParts(
        store=backend,
        credentials=credentials,
        audit=audit,
        embedder=embedder,
        rate=limiter or RateLimiter(),
        limits=limits,
        admin_token=admin_token,
        ckks=ckks,
        suspend_on_probing=suspend_on_probing,
        adapter_dir=adapter_dir,
    )
    app.state.gateway.adapters.restore()
    # outermost: no body is read (nor its size checked) before the credential is
    app.add_middleware(
        AuthenticateFirst,
        check=gateway_header_check(app.state.gateway),
        public_paths=public_paths(app),
    )
    app.include_router(health_router)
    app.include_router(data_router)
    if ckks is not None:
        app.include_router(ckks_router)
    app.include_router(admin_router)
    app.include_router(model_router)
    # outermost of all: counts the header check's 401s too; /metrics needs the admin token
    install_metrics(
        app,
        namespace=GATEWAY_NAMESPACE,
        check=token_check(admin_token, variable="FEDEMBED_INDEX_ADMIN_TOKEN"),
        answered_routes=[(routes.QUERY.method, routes.QUERY.template)],
        collectors=[KeyStateCollector(credentials, namespace=GATEWAY_NAMESPACE)],
    )
    return app
