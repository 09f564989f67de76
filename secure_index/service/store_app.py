"""The index store's internal HTTP API (role ``store``): only the gateway calls it.

It holds the encrypted index and answers nearest-neighbour queries on the vectors it is
given; in DCPE collections those are ciphertexts, so this process never sees a
plaintext vector or any text. Every route but the health check needs the gateway's
bearer token, checked before any of a request's body is read
(:mod:`secure_index.service.auth_first`).

This module assembles the app from its routers:
:mod:`secure_index.service.store_routes` (at-rest and DCPE collections) and
:mod:`secure_index.service.store_ckks_routes` (CKKS collections, when the store has
them). They take the store's parts, kept on ``app.state.store``, through the
dependencies of :mod:`secure_index.service.deps`.
"""

import logging

from fastapi import FastAPI

from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.index_store import IndexStore
from secure_index.service.auth_first import AuthenticateFirst, public_paths
from secure_index.service.deps import StoreParts, store_header_check
from secure_index.service.http_errors import BodySizeLimit, install_error_handlers
from secure_index.service.metrics import STORE_NAMESPACE, install_metrics, token_check
from secure_index.service.store_ckks_routes import CKKS_LARGE_PATHS, store_ckks_router
from secure_index.service.store_routes import store_health_router, store_router

__all__ = ["create_store_app"]

logger = logging.getLogger(__name__)


def create_store_app(
    store: IndexStore,
    *,
    token: str,
    max_body_bytes: int,
    ckks: CkksCollections | None = None,
    max_block_bytes: int = 0,
) -> FastAPI:
    """The internal API over ``store`` (and ``ckks`` collections), guarded by ``token``."""
    app = FastAPI(
        title="fedembed index store (internal)",
        version="1",
        description="Encrypted-at-rest vector index; called only by the query gateway.",
    )
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=max_body_bytes,
        large_paths=CKKS_LARGE_PATHS,
        large_max_bytes=max_block_bytes,
    )
    app.state.store = StoreParts(index=store, token=token, ckks=ckks)
    # outermost: no body is read (nor its size checked) before the store token is
    app.add_middleware(
        AuthenticateFirst,
        check=store_header_check(app.state.store),
        public_paths=public_paths(app),
    )
    app.include_router(store_health_router)
    app.include_router(store_router)
    if ckks is not None:
        app.include_router(store_ckks_router)
    # outermost of all: counts the token check's 401s too; /metrics needs the store token
    install_metrics(
        app,
        namespace=STORE_NAMESPACE,
        check=token_check(token, variable="FEDEMBED_INDEX_STORE_TOKEN"),
    )
    return app
