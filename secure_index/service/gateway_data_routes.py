"""The query gateway's data routes: health, collection info, partner queries, node uploads.

Partners call ``POST /v1/collections/{c}/query`` with a scoped API key and get document
ids, owning nodes, ranks and (as far as the key's policy allows) scores, never vectors or
text. Nodes call ``PUT
/v1/collections/{c}/documents`` with their own key (idempotent batch upserts of
protected vectors) and ``POST /v1/collections/{c}/documents/delete`` to delete their own
documents. Every decision is appended to the hash-chained audit log. Paths and methods
come from :mod:`index_client.routes`.
"""

from dataclasses import asdict

import numpy as np
from fastapi import APIRouter

from index_client import routes
from index_client.vector_space import SPACE_FIELDS, VectorSpace
from secure_index.index.collection_space import check_query_in, check_query_space, parse_space
from secure_index.index.collection_spec import CollectionSpec
from secure_index.index.hnsw_collection import Protection
from secure_index.service.credentials import CredentialRole
from secure_index.service.deps import (
    AccessDep,
    BudgetDep,
    CallerDep,
    CredentialsDep,
    EmbedderDep,
    LimitsDep,
    OptionalCkksDep,
    ProbesDep,
    StoreDep,
)
from secure_index.service.gateway_access import Action, Decision
from secure_index.service.gateway_ckks import CkksGatewaySearch, ckks_collection_info
from secure_index.service.gateway_responses import ERROR_RESPONSES, collection_info
from secure_index.service.http_errors import ApiError
from secure_index.service.partner_policy import (
    refuse_vector_query,
    spend_query,
    watch_for_probing,
)
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.routing import handle
from secure_index.service.schemas import (
    CollectionInfo,
    DeleteRequest,
    DeleteResult,
    HitOut,
    NamePath,
    QueryRequest,
    QueryResult,
    UploadRequest,
    UploadResult,
)
from secure_index.service.score_release import release_hits
from secure_index.service.store_backend import StoreBackend

__all__ = ["data_router", "health_router"]

health_router = APIRouter()
data_router = APIRouter(responses=ERROR_RESPONSES)


@handle(health_router, routes.HEALTH)
def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


def _info(store: StoreBackend, ckks: CkksGatewaySearch | None, name: str) -> CollectionInfo:
    if ckks is not None and ckks.has(name):
        return ckks_collection_info(ckks.backend.info(name))
    return collection_info(store, name)


@handle(data_router, routes.LIST_COLLECTIONS)
def my_collections(
    cred: CallerDep, access: AccessDep, store: StoreDep, ckks: OptionalCkksDep
) -> list[CollectionInfo]:
    """The collections your key may use (each request spends a rate token)."""
    access.throttle(cred, Action.LIST)
    names = [*store.names(), *(ckks.backend.names() if ckks is not None else [])]
    return [_info(store, ckks, n) for n in sorted(names) if cred.allows(n)]


@handle(data_router, routes.DESCRIBE_COLLECTION)
def describe(
    collection: NamePath,
    cred: CallerDep,
    access: AccessDep,
    store: StoreDep,
    ckks: OptionalCkksDep,
) -> CollectionInfo:
    """A collection's dimension, metric, protection and size (any role, in scope)."""
    access.authorise(cred, None, Action.DESCRIBE, collection)  # rate first; 403s audited
    return _info(store, ckks, collection)


def _check_text_space(store: StoreBackend, spec: CollectionSpec, embedder: QueryEmbedder) -> None:
    """Refuse (409) a text query the gateway would embed in another space than ``spec``'s."""
    space = embedder.vector_space
    if space is None:
        return  # no text queries here: embed_text refuses the query
    populated = spec.vector_space is None and store.stats(spec.name).documents > 0
    check_query_space(spec, space, populated=populated)


def _check_ckks_text_space(ckks: CkksGatewaySearch, name: str, embedder: QueryEmbedder) -> None:
    """Refuse (409) a text query in another space than the CKKS collection's blocks'."""
    space = embedder.vector_space
    if space is None:
        return
    info = ckks.backend.info(name)
    recorded = VectorSpace.from_fields(asdict(info))
    check_query_in(name, recorded, space, populated=info.blocks > 0)


@handle(data_router, routes.QUERY)
def query(
    collection: NamePath,
    body: QueryRequest,
    cred: CallerDep,
    access: AccessDep,
    store: StoreDep,
    ckks: OptionalCkksDep,
    embedder: EmbedderDep,
    limits: LimitsDep,
    credentials: CredentialsDep,
    budget: BudgetDep,
    probes: ProbesDep,
) -> QueryResult:
    """Search a collection by text (or vector, with a grant): ids, owners, ranks, scores.

    The key's query policy applies (:mod:`secure_index.service.partner_policy`): vector
    queries only with a grant, a query budget per window, probe detection, and scores
    only as far as its ``score_release`` allows (rank only by default).
    """
    access.authorise(cred, CredentialRole.PARTNER, Action.QUERY, collection)
    access.refuse_suspended(cred, Action.QUERY, collection)
    if (body.text is None) == (body.vector is None):
        raise ApiError(
            422,
            "send exactly one of 'text' and 'vector'",
            expected='{"text": "..."} or {"vector": [...]}',
            fix="drop one field",
        )
    if body.vector is not None:
        refuse_vector_query(access, cred, collection)
    if body.k > min(cred.top_k_cap, limits.max_k):
        cap = min(cred.top_k_cap, limits.max_k)
        access.deny(
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
    encrypted = ckks if ckks is not None and ckks.has(collection) else None
    spec = None
    if encrypted is not None:
        dimension = encrypted.key.layout.dimension
        if body.text is not None:  # never answer from vectors of another encoder space
            _check_ckks_text_space(encrypted, collection, embedder)
    else:
        spec = store.spec(collection)
        dimension = spec.dimension
        if body.text is not None:  # never answer from vectors of another encoder space
            _check_text_space(store, spec, embedder)
    raw = (
        embedder.embed_text(body.text)
        if body.text is not None
        else np.asarray([body.vector], dtype=np.float32)
    )
    if raw.shape[-1] != dimension:
        raise ApiError(
            422,
            f"the query vector has {raw.shape[-1]} dimensions",
            expected=f"{dimension} dimensions for {collection!r}",
            fix="embed with the collection's model",
        )
    if encrypted is not None and body.filters.tags:
        raise ApiError(
            422,
            "CKKS collections have no tags",
            expected="no 'tags' filter (an 'owner' filter works)",
            fix="drop the tags filter",
        )
    dcpe = spec is not None and spec.protection is Protection.DCPE
    vector = embedder.protect(raw, dcpe=dcpe)  # a zero or non-finite vector is a 422 here
    spent = spend_query(access, budget, cred, collection)
    try:
        watch_for_probing(access, probes, credentials, cred, collection, raw[0])
        if encrypted is not None:
            hits = encrypted.search(collection, vector[0], body.k, owner=body.filters.owner)
        else:
            hits = store.knn_query(
                collection, vector, body.k, owner=body.filters.owner, tags=body.filters.tags
            )[0]
    except BaseException:
        budget.refund(cred.key_id)  # not answered: the unit goes back
        raise
    released = release_hits(hits, cred.score_release)
    access.allowed(
        cred,
        Action.QUERY,
        collection,
        {
            "k": body.k,
            "kind": "text" if body.text else "vector",
            "results": [h.doc_id for h in released],
            "release": str(cred.score_release),
            "budget_spent": spent,
        },
    )
    return QueryResult(
        collection=collection,
        k=body.k,
        results=[
            HitOut(doc_id=h.doc_id, owner=h.owner, rank=h.rank, score=h.score) for h in released
        ],
    )


@handle(data_router, routes.UPSERT_DOCUMENTS)
def upload(
    collection: NamePath,
    body: UploadRequest,
    cred: CallerDep,
    access: AccessDep,
    store: StoreDep,
    limits: LimitsDep,
) -> UploadResult:
    """Idempotent batch upsert of the calling node's document vectors (durable)."""
    access.authorise(cred, CredentialRole.NODE, Action.UPLOAD, collection)
    if len(body.items) > limits.max_batch:
        access.deny(
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
    ids = [i.id for i in body.items]
    access.allowed_write(cred, Action.UPLOAD, collection, ids)  # durable before the write
    result = store.upsert(
        collection,
        ids,
        [i.vector for i in body.items],
        owner=cred.name,
        tags=[i.tags for i in body.items],
        space=parse_space(body.model_dump(include=set(SPACE_FIELDS))),
    )
    return UploadResult(
        collection=collection, inserted=result.inserted, updated=result.updated, seq=result.seq
    )


@handle(data_router, routes.DELETE_DOCUMENTS)
def delete(
    collection: NamePath, body: DeleteRequest, cred: CallerDep, access: AccessDep, store: StoreDep
) -> DeleteResult:
    """Delete the calling node's own documents (durable)."""
    access.authorise(cred, CredentialRole.NODE, Action.DELETE, collection)
    access.allowed_write(cred, Action.DELETE, collection, body.ids)  # durable before the write
    deleted = store.delete(collection, body.ids, owner=cred.name)
    return DeleteResult(collection=collection, deleted=deleted)
