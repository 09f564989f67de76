"""The query gateway (FastAPI): partner queries, node uploads, admin, audit.

Partners call ``POST /v1/collections/{c}/query`` with a scoped API key and get document
ids, owning nodes and scores, never vectors or text. Nodes call ``PUT
/v1/collections/{c}/documents`` with their own key (idempotent batch upserts of
protected vectors). Every decision, allowed or denied, is appended to the hash-chained
audit log. Client mistakes are 401/403/404/413/422/429 with a body that says what was
wrong, what was expected and how to fix it.
"""

import hmac
import logging
import math
from dataclasses import asdict
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header

from secure_index.index.hnsw_collection import CollectionSpec, Metric, Protection
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import Credential, CredentialStore, Role
from secure_index.service.http_errors import ApiError, BodySizeLimit, install_error_handlers
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.rate_limit import RateLimiter
from secure_index.service.schemas import (
    CollectionCreate,
    CollectionInfo,
    CredentialCreate,
    CredentialInfo,
    DeleteRequest,
    DeleteResult,
    ErrorBody,
    HitOut,
    QueryRequest,
    QueryResult,
    UploadRequest,
    UploadResult,
)
from secure_index.service.store_backend import StoreBackend

__all__ = ["Action", "Decision", "GatewayLimits", "create_gateway_app"]

logger = logging.getLogger(__name__)

BEARER = "Bearer "
ADMIN_ACTOR = "admin"


class Action:
    """Audit log action names."""

    QUERY = "query"
    UPLOAD = "upload"
    DELETE = "delete"
    CREATE_COLLECTION = "create-collection"
    SNAPSHOT = "snapshot"
    CREATE_KEY = "create-key"
    REVOKE_KEY = "revoke-key"


class Decision:
    """Audit log decisions."""

    ALLOW = "allow"
    DENY_SCOPE = "deny:scope"
    DENY_ROLE = "deny:role"
    DENY_RATE = "deny:rate-limit"
    DENY_TOP_K = "deny:top-k-cap"
    DENY_BATCH = "deny:batch-size"


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 422, 429, 503)
}


class GatewayLimits:
    """Request limits of the gateway."""

    def __init__(self, *, max_body_bytes: int, max_batch: int, max_k: int) -> None:
        self.max_body_bytes, self.max_batch, self.max_k = max_body_bytes, max_batch, max_k


def create_gateway_app(
    *,
    backend: StoreBackend,
    credentials: CredentialStore,
    audit: AuditLog,
    embedder: QueryEmbedder,
    admin_token: str,
    limits: GatewayLimits,
    limiter: RateLimiter | None = None,
) -> FastAPI:
    """The gateway application over its (real) parts."""
    app = FastAPI(
        title="fedembed query gateway",
        version="1",
        description=(
            "Semantic search over consortium members' documents. Results are document ids, "
            "owning nodes and scores: never vectors, never text."
        ),
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    rate = limiter or RateLimiter()
    admin_secret = admin_token.encode()

    def bearer(authorization: str | None) -> str:
        if not authorization or not authorization.startswith(BEARER):
            raise ApiError(
                401,
                "missing API key",
                expected="an 'Authorization: Bearer <key>' header",
                fix="send the key you were given (fedembed partner create)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return authorization[len(BEARER) :]

    def caller(authorization: Annotated[str | None, Header()] = None) -> Credential:
        credential = credentials.authenticate(bearer(authorization))
        if credential is None:
            raise ApiError(
                401,
                "unknown, malformed or revoked API key",
                expected="a current key issued by the consortium",
                fix="ask the operator for a new key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return credential

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if not hmac.compare_digest(bearer(authorization).encode(), admin_secret):
            raise ApiError(
                401,
                "wrong admin token",
                expected="FEDEMBED_INDEX_ADMIN_TOKEN",
                fix="use the operator's admin token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def deny(cred: Credential, action: str, collection: str, decision: str, err: ApiError) -> None:
        audit.append(
            actor=cred.key_id,
            role=str(cred.role),
            action=action,
            collection=collection,
            decision=decision,
            detail={"name": cred.name, "status": err.status},
        )
        raise err

    def authorise(cred: Credential, role: Role, action: str, collection: str) -> None:
        if cred.role is not role:
            deny(
                cred,
                action,
                collection,
                Decision.DENY_ROLE,
                ApiError(
                    403,
                    f"a {cred.role} key cannot {action}",
                    expected=f"a {role} key",
                    fix=f"use the {role} key issued to you",
                ),
            )
        if not cred.allows(collection):
            deny(
                cred,
                action,
                collection,
                Decision.DENY_SCOPE,
                ApiError(
                    403,
                    f"your key is not scoped to collection {collection!r}",
                    expected=f"one of {sorted(cred.scopes)}",
                    fix="ask the operator to extend the key's scopes",
                ),
            )
        wait = rate.acquire(cred.key_id, rate_per_minute=cred.rate_per_minute, burst=cred.burst)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            deny(
                cred,
                action,
                collection,
                Decision.DENY_RATE,
                ApiError(
                    429,
                    f"rate limit of {cred.rate_per_minute}/min (burst {cred.burst}) exceeded",
                    expected="fewer requests",
                    fix=f"retry after {retry} s",
                    headers={"Retry-After": str(retry)},
                ),
            )

    def info(name: str) -> CollectionInfo:
        return CollectionInfo(**asdict(backend.stats(name)))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    @app.get("/v1/collections", responses=_ERRORS)
    def my_collections(cred: Annotated[Credential, Depends(caller)]) -> list[CollectionInfo]:
        """The collections your key may use."""
        return [info(n) for n in backend.names() if cred.allows(n)]

    @app.get("/v1/collections/{collection}", responses=_ERRORS)
    def describe(collection: str, cred: Annotated[Credential, Depends(caller)]) -> CollectionInfo:
        """A collection's dimension, metric, protection and size."""
        if not cred.allows(collection):
            raise ApiError(
                403,
                f"your key is not scoped to collection {collection!r}",
                expected=f"one of {sorted(cred.scopes)}",
                fix="ask the operator",
            )
        return info(collection)

    @app.post("/v1/collections/{collection}/query", responses=_ERRORS)
    def query(
        collection: str, body: QueryRequest, cred: Annotated[Credential, Depends(caller)]
    ) -> QueryResult:
        """Search a collection by text or vector: ids, owners and scores."""
        authorise(cred, Role.PARTNER, Action.QUERY, collection)
        if (body.text is None) == (body.vector is None):
            raise ApiError(
                422,
                "send exactly one of 'text' and 'vector'",
                expected='{"text": "..."} or {"vector": [...]}',
                fix="drop one field",
            )
        if body.k > min(cred.top_k_cap, limits.max_k):
            cap = min(cred.top_k_cap, limits.max_k)
            deny(
                cred,
                Action.QUERY,
                collection,
                Decision.DENY_TOP_K,
                ApiError(
                    403,
                    f"k={body.k} exceeds your key's cap of {cap}",
                    expected=f"k <= {cap}",
                    fix=f"ask for at most {cap} results",
                ),
            )
        spec = backend.spec(collection)
        raw = (
            embedder.embed_text(body.text)
            if body.text is not None
            else np.asarray([body.vector], dtype=np.float32)
        )
        if raw.shape[-1] != spec.dimension:
            raise ApiError(
                422,
                f"the query vector has {raw.shape[-1]} dimensions",
                expected=f"{spec.dimension} dimensions for {collection!r}",
                fix="embed with the collection's model",
            )
        vector = embedder.protect(raw, dcpe=spec.protection is Protection.DCPE)
        hits = backend.knn_query(
            collection, vector, body.k, owner=body.filters.owner, tags=body.filters.tags
        )[0]
        audit.append(
            actor=cred.key_id,
            role=str(cred.role),
            action=Action.QUERY,
            collection=collection,
            decision=Decision.ALLOW,
            detail={
                "name": cred.name,
                "k": body.k,
                "kind": "text" if body.text else "vector",
                "results": [h.doc_id for h in hits],
            },
        )
        return QueryResult(
            collection=collection,
            k=body.k,
            results=[HitOut(doc_id=h.doc_id, owner=h.owner, score=h.score) for h in hits],
        )

    @app.put("/v1/collections/{collection}/documents", responses=_ERRORS)
    def upload(
        collection: str, body: UploadRequest, cred: Annotated[Credential, Depends(caller)]
    ) -> UploadResult:
        """Idempotent batch upsert of the calling node's document vectors (durable)."""
        authorise(cred, Role.NODE, Action.UPLOAD, collection)
        if len(body.items) > limits.max_batch:
            deny(
                cred,
                Action.UPLOAD,
                collection,
                Decision.DENY_BATCH,
                ApiError(
                    413,
                    f"{len(body.items)} items in one batch",
                    expected=f"at most {limits.max_batch}",
                    fix="split the upload into smaller batches",
                ),
            )
        result = backend.upsert(
            collection,
            [i.id for i in body.items],
            [i.vector for i in body.items],
            owner=cred.name,
            tags=[i.tags for i in body.items],
        )
        audit.append(
            actor=cred.key_id,
            role=str(cred.role),
            action=Action.UPLOAD,
            collection=collection,
            decision=Decision.ALLOW,
            detail={
                "name": cred.name,
                "items": len(body.items),
                "inserted": result.inserted,
                "updated": result.updated,
                "seq": result.seq,
            },
        )
        return UploadResult(
            collection=collection, inserted=result.inserted, updated=result.updated, seq=result.seq
        )

    @app.post("/v1/collections/{collection}/documents/delete", responses=_ERRORS)
    def delete(
        collection: str, body: DeleteRequest, cred: Annotated[Credential, Depends(caller)]
    ) -> DeleteResult:
        """Delete the calling node's own documents (durable)."""
        authorise(cred, Role.NODE, Action.DELETE, collection)
        deleted = backend.delete(collection, body.ids, owner=cred.name)
        audit.append(
            actor=cred.key_id,
            role=str(cred.role),
            action=Action.DELETE,
            collection=collection,
            decision=Decision.ALLOW,
            detail={"name": cred.name, "requested": len(body.ids), "deleted": deleted},
        )
        return DeleteResult(collection=collection, deleted=deleted)

    guard = [Depends(admin)]

    @app.post("/v1/admin/collections", dependencies=guard, status_code=201, responses=_ERRORS)
    def create_collection(body: CollectionCreate) -> CollectionInfo:
        """Create a collection (fixed dimension, metric and protection)."""
        spec = CollectionSpec(
            body.name,
            body.dimension,
            metric=Metric(body.metric),
            protection=Protection(body.protection),
        )
        stats = backend.create_collection(spec)
        audit.append(
            actor=ADMIN_ACTOR,
            role="admin",
            action=Action.CREATE_COLLECTION,
            collection=body.name,
            decision=Decision.ALLOW,
            detail={
                "dimension": body.dimension,
                "metric": body.metric,
                "protection": body.protection,
            },
        )
        return CollectionInfo(**asdict(stats))

    @app.get("/v1/admin/collections", dependencies=guard, responses=_ERRORS)
    def all_collections() -> list[CollectionInfo]:
        """Every collection with its sizes."""
        return [info(n) for n in backend.names()]

    @app.post("/v1/admin/collections/{collection}/snapshot", dependencies=guard, responses=_ERRORS)
    def snapshot(collection: str) -> dict[str, int]:
        """Fold the collection's log into a new encrypted generation now."""
        generation = backend.snapshot(collection)
        audit.append(
            actor=ADMIN_ACTOR,
            role="admin",
            action=Action.SNAPSHOT,
            collection=collection,
            decision=Decision.ALLOW,
            detail={"generation": generation},
        )
        return {"generation": generation}

    @app.post("/v1/admin/credentials", dependencies=guard, status_code=201, responses=_ERRORS)
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
        audit.append(
            actor=ADMIN_ACTOR,
            role="admin",
            action=Action.CREATE_KEY,
            collection="*",
            decision=Decision.ALLOW,
            detail={"key_id": cred.key_id, "name": cred.name, "role": str(cred.role)},
        )
        return _credential_info(cred, token)

    @app.get("/v1/admin/credentials", dependencies=guard, responses=_ERRORS)
    def list_keys() -> list[CredentialInfo]:
        """Every key (hashes and tokens are never shown)."""
        return [_credential_info(c) for c in credentials.list(include_revoked=True)]

    @app.delete("/v1/admin/credentials/{key_id}", dependencies=guard, responses=_ERRORS)
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
        audit.append(
            actor=ADMIN_ACTOR,
            role="admin",
            action=Action.REVOKE_KEY,
            collection="*",
            decision=Decision.ALLOW,
            detail={"key_id": key_id},
        )
        return _credential_info(cred)

    return app


def _credential_info(cred: Credential, token: str | None = None) -> CredentialInfo:
    return CredentialInfo(
        key_id=cred.key_id,
        role=str(cred.role),
        name=cred.name,
        scopes=sorted(cred.scopes),
        top_k_cap=cred.top_k_cap,
        rate_per_minute=cred.rate_per_minute,
        burst=cred.burst,
        created_at=cred.created_at,
        revoked_at=cred.revoked_at,
        token=token,
    )
