"""The query gateway's admin routes: collections, snapshots and API keys.

Every route needs the operator's admin token (``FEDEMBED_INDEX_ADMIN_TOKEN``; the
router's :func:`~secure_index.service.deps.require_admin`). Creating a collection,
taking a snapshot, issuing and revoking a key are appended to the hash-chained audit log
with actor ``admin``. A new key's token is shown only in the answer that issues it; a
revoked key stops working at once. Paths and methods come from
:mod:`index_client.routes`.
"""

from dataclasses import asdict

from fastapi import APIRouter, Depends

from index_client import routes
from secure_index.errors import CollectionExistsError
from secure_index.index.hnsw_collection import CollectionSpec, Metric, Protection
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import ALL_COLLECTIONS, CredentialRole
from secure_index.service.deps import (
    AuditDep,
    CredentialsDep,
    OptionalCkksDep,
    RateDep,
    StoreDep,
    require_admin,
)
from secure_index.service.gateway_access import ADMIN_ACTOR, Action, Decision
from secure_index.service.gateway_responses import (
    ERROR_RESPONSES,
    collection_info,
    credential_info,
)
from secure_index.service.http_errors import ApiError
from secure_index.service.routing import handle
from secure_index.service.schemas import (
    CollectionCreate,
    CollectionInfo,
    CredentialCreate,
    CredentialInfo,
    NamePath,
)

__all__ = ["admin_router", "record_admin_action"]

admin_router = APIRouter(dependencies=[Depends(require_admin)], responses=ERROR_RESPONSES)


def record_admin_action(
    audit: AuditLog, action: str, collection: str, detail: dict[str, object]
) -> None:
    """One audit entry for an allowed admin action."""
    audit.append(
        actor=ADMIN_ACTOR,
        role=ADMIN_ACTOR,
        action=action,
        collection=collection,
        decision=Decision.ALLOW,
        detail=detail,
    )


@handle(admin_router, routes.CREATE_COLLECTION, status_code=201)
def create_collection(
    body: CollectionCreate, store: StoreDep, ckks: OptionalCkksDep, audit: AuditDep
) -> CollectionInfo:
    """Create a collection (fixed dimension, metric and protection)."""
    if ckks is not None and ckks.has(body.name):  # one name, one collection of any kind
        raise CollectionExistsError(
            f"a CKKS collection named {body.name!r} exists",
            expected="a name no collection has",
            fix="use the existing collection or choose another name",
        )
    spec = CollectionSpec(
        body.name,
        body.dimension,
        metric=Metric(body.metric),
        protection=Protection(body.protection),
    )
    stats = store.create_collection(spec)
    record_admin_action(
        audit,
        Action.CREATE_COLLECTION,
        body.name,
        {"dimension": body.dimension, "metric": body.metric, "protection": body.protection},
    )
    return CollectionInfo(**asdict(stats))


@handle(admin_router, routes.ADMIN_COLLECTIONS)
def all_collections(store: StoreDep) -> list[CollectionInfo]:
    """Every collection with its sizes."""
    return [collection_info(store, n) for n in store.names()]


@handle(admin_router, routes.SNAPSHOT)
def snapshot(collection: NamePath, store: StoreDep, audit: AuditDep) -> dict[str, int]:
    """Fold the collection's log into a new encrypted generation now."""
    generation = store.snapshot(collection)
    record_admin_action(audit, Action.SNAPSHOT, collection, {"generation": generation})
    return {"generation": generation}


@handle(admin_router, routes.ISSUE_CREDENTIAL, status_code=201)
def create_key(
    body: CredentialCreate, credentials: CredentialsDep, audit: AuditDep
) -> CredentialInfo:
    """Issue a partner or node key; the token is shown only in this answer."""
    cred, token = credentials.create(
        role=CredentialRole(body.role),
        name=body.name,
        scopes=body.scopes,
        top_k_cap=body.top_k_cap,
        rate_per_minute=body.rate_per_minute,
        burst=body.burst,
        vector_queries=body.vector_queries,
        score_release=body.score_release,
        query_budget=body.query_budget,
        budget_window_s=body.budget_window_s,
    )
    record_admin_action(
        audit,
        Action.CREATE_KEY,
        ALL_COLLECTIONS,
        {
            "key_id": cred.key_id,
            "name": cred.name,
            "role": str(cred.role),
            "vector_queries": cred.vector_queries,
            "score_release": str(cred.score_release),
            "query_budget": cred.query_budget,
            "budget_window_s": cred.budget_window_s,
        },
    )
    return credential_info(cred, token)


@handle(admin_router, routes.LIST_CREDENTIALS)
def list_keys(credentials: CredentialsDep) -> list[CredentialInfo]:
    """Every key (hashes and tokens are never shown)."""
    return [credential_info(c) for c in credentials.list(include_revoked=True)]


@handle(admin_router, routes.REVOKE_CREDENTIAL)
def revoke_key(
    key_id: str, credentials: CredentialsDep, rate: RateDep, audit: AuditDep
) -> CredentialInfo:
    """Revoke a key; it stops working at once."""
    if credentials.get(key_id) is None:
        raise ApiError(
            404,
            f"no key {key_id!r}",
            expected=f"a key id from {routes.LIST_CREDENTIALS.method} "
            f"{routes.LIST_CREDENTIALS.template}",
            fix="check the id",
        )
    cred = credentials.revoke(key_id)
    rate.forget(key_id)
    record_admin_action(audit, Action.REVOKE_KEY, ALL_COLLECTIONS, {"key_id": key_id})
    return credential_info(cred)
