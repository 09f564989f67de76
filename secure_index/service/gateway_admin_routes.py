"""The query gateway's admin routes: collections, snapshots and API keys.

Every route needs the operator's admin token (``FEDEMBED_INDEX_ADMIN_TOKEN``). Creating
a collection, taking a snapshot, issuing and revoking a key are appended to the
hash-chained audit log with actor ``admin``. A new key's token is shown only in the
answer that issues it; a revoked key stops working at once.
"""

from dataclasses import asdict

from fastapi import Depends, FastAPI

from secure_index.index.hnsw_collection import CollectionSpec, Metric, Protection
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import ALL_COLLECTIONS, CredentialStore, Role
from secure_index.service.gateway_access import ADMIN_ACTOR, Action, Decision, GatewayAccess
from secure_index.service.gateway_responses import (
    ERROR_RESPONSES,
    collection_info,
    credential_info,
)
from secure_index.service.http_errors import ApiError
from secure_index.service.rate_limit import RateLimiter
from secure_index.service.schemas import (
    CollectionCreate,
    CollectionInfo,
    CredentialCreate,
    CredentialInfo,
)
from secure_index.service.store_backend import StoreBackend

__all__ = ["install_admin_routes"]


def install_admin_routes(
    app: FastAPI,
    *,
    backend: StoreBackend,
    credentials: CredentialStore,
    audit: AuditLog,
    access: GatewayAccess,
    rate: RateLimiter,
) -> None:
    """Adds the ``/v1/admin`` routes to ``app``, all behind the admin token."""
    guard = [Depends(access.admin)]

    def record(action: str, collection: str, detail: dict[str, object]) -> None:
        """One audit entry for an allowed admin action."""
        audit.append(
            actor=ADMIN_ACTOR,
            role=ADMIN_ACTOR,
            action=action,
            collection=collection,
            decision=Decision.ALLOW,
            detail=detail,
        )

    @app.post(
        "/v1/admin/collections", dependencies=guard, status_code=201, responses=ERROR_RESPONSES
    )
    def create_collection(body: CollectionCreate) -> CollectionInfo:
        """Create a collection (fixed dimension, metric and protection)."""
        spec = CollectionSpec(
            body.name,
            body.dimension,
            metric=Metric(body.metric),
            protection=Protection(body.protection),
        )
        stats = backend.create_collection(spec)
        record(
            Action.CREATE_COLLECTION,
            body.name,
            {
                "dimension": body.dimension,
                "metric": body.metric,
                "protection": body.protection,
            },
        )
        return CollectionInfo(**asdict(stats))

    @app.get("/v1/admin/collections", dependencies=guard, responses=ERROR_RESPONSES)
    def all_collections() -> list[CollectionInfo]:
        """Every collection with its sizes."""
        return [collection_info(backend, n) for n in backend.names()]

    @app.post(
        "/v1/admin/collections/{collection}/snapshot", dependencies=guard, responses=ERROR_RESPONSES
    )
    def snapshot(collection: str) -> dict[str, int]:
        """Fold the collection's log into a new encrypted generation now."""
        generation = backend.snapshot(collection)
        record(Action.SNAPSHOT, collection, {"generation": generation})
        return {"generation": generation}

    @app.post(
        "/v1/admin/credentials", dependencies=guard, status_code=201, responses=ERROR_RESPONSES
    )
    def create_key(body: CredentialCreate) -> CredentialInfo:
        """Issue a partner or node key; the token is shown only in this answer."""
        cred, token = credentials.create(
            role=Role(body.role),
            name=body.name,
            scopes=body.scopes,
            top_k_cap=body.top_k_cap,
            rate_per_minute=body.rate_per_minute,
            burst=body.burst,
        )
        record(
            Action.CREATE_KEY,
            ALL_COLLECTIONS,
            {"key_id": cred.key_id, "name": cred.name, "role": str(cred.role)},
        )
        return credential_info(cred, token)

    @app.get("/v1/admin/credentials", dependencies=guard, responses=ERROR_RESPONSES)
    def list_keys() -> list[CredentialInfo]:
        """Every key (hashes and tokens are never shown)."""
        return [credential_info(c) for c in credentials.list(include_revoked=True)]

    @app.delete("/v1/admin/credentials/{key_id}", dependencies=guard, responses=ERROR_RESPONSES)
    def revoke_key(key_id: str) -> CredentialInfo:
        """Revoke a key; it stops working at once."""
        if credentials.get(key_id) is None:
            raise ApiError(
                404,
                f"no key {key_id!r}",
                expected="a key id from GET /v1/admin/credentials",
                fix="check the id",
            )
        cred = credentials.revoke(key_id)
        rate.forget(key_id)
        record(Action.REVOKE_KEY, ALL_COLLECTIONS, {"key_id": key_id})
        return credential_info(cred)
