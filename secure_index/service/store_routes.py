"""The index store's internal routes for at-rest and DCPE collections (role ``store``).

Only the gateway calls them, with the store token (the router's
:func:`~secure_index.service.deps.require_gateway`); the health check needs none (then it
says only whether the store is up and how many collections could not be opened). The
store answers nearest-neighbour queries on the vectors it is given; in DCPE collections
those are ciphertexts, so it never sees a plaintext vector or any text. Paths and
methods come from :mod:`index_client.routes`; the gateway's client of these routes is
:class:`~secure_index.service.store_backend.RemoteStore`.
"""

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from index_client import routes
from secure_index.index.collection_space import parse_space
from secure_index.service.deps import (
    AuthorizationHeader,
    IndexDep,
    StorePartsDep,
    check_store_token,
    require_gateway,
)
from secure_index.service.http_errors import ApiError
from secure_index.service.routing import handle
from secure_index.service.schemas import DOC_ID, MAX_DIM, Name, NamePath, StoreQuery
from secure_index.service.store_backend import spec_from_dict, spec_to_dict

__all__ = ["store_health_router", "store_router"]

store_health_router = APIRouter()
store_router = APIRouter(dependencies=[Depends(require_gateway)])


class _SpecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    dimension: int = Field(ge=1, le=MAX_DIM)
    metric: str = Field(pattern=r"^(cosine|ip|l2)$")
    protection: str = Field(pattern=r"^(at-rest|dcpe)$")
    m: int = Field(default=16, ge=2, le=4096)
    ef_construction: int = Field(default=200, ge=1, le=4096)
    ef_search: int = Field(default=100, ge=1, le=4096)


class _UpsertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, Field(pattern=DOC_ID)]] = Field(min_length=1)
    vectors: list[list[float]] = Field(min_length=1)
    owner: Name
    tags: list[list[str]] | None = None
    space: str | None = None  # the vectors' encoder space: all three or none
    encoder_backend: str | None = None
    model_fingerprint: str | None = None


class _DeleteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, Field(pattern=DOC_ID)]] = Field(min_length=1)
    owner: Name


@handle(store_health_router, routes.HEALTH)
def healthz(parts: StorePartsDep, authorization: AuthorizationHeader = None) -> dict[str, Any]:
    """Liveness for anyone; the last snapshot error and broken collections for the gateway.

    Without the store token the answer is the status and how many collections could not
    be opened, nothing more (names and problems may carry file paths). With it,
    ``unavailable`` maps each broken collection (at-rest, DCPE or CKKS: damaged, rolled
    back or half-made) to its problem; the others keep serving, and a request to a broken
    one answers 503 with the same problem.
    """
    store = parts.index
    broken = {**store.broken(), **store.ckks_collections().broken()}
    answer: dict[str, Any] = {"status": "ok", "unavailable_count": len(broken)}
    try:
        check_store_token(parts.token, authorization)
    except ApiError:
        return answer
    return {
        **answer,
        "snapshot_error": store.last_snapshot_error,
        "unavailable": {name: error.problem for name, error in sorted(broken.items())},
    }


@handle(store_router, routes.STORE_LIST)
def names(store: IndexDep) -> dict[str, Any]:
    return {"names": store.names()}


@handle(store_router, routes.STORE_CREATE, status_code=201)
def create(body: _SpecBody, store: IndexDep) -> dict[str, Any]:
    return asdict(store.create_collection(spec_from_dict(body.model_dump())))


@handle(store_router, routes.STORE_DESCRIBE)
def describe(name: NamePath, store: IndexDep) -> dict[str, Any]:
    return {"spec": spec_to_dict(store.spec(name)), "stats": asdict(store.stats(name))}


@handle(store_router, routes.STORE_UPSERT)
def upsert(name: NamePath, body: _UpsertBody, store: IndexDep) -> dict[str, Any]:
    result = store.upsert(
        name,
        body.ids,
        body.vectors,
        owner=body.owner,
        tags=body.tags,
        space=parse_space(body.model_dump()),
    )
    return asdict(result)


@handle(store_router, routes.STORE_DELETE)
def delete(name: NamePath, body: _DeleteBody, store: IndexDep) -> dict[str, Any]:
    return {"deleted": store.delete(name, body.ids, owner=body.owner)}


@handle(store_router, routes.STORE_QUERY)
def query(name: NamePath, body: StoreQuery, store: IndexDep) -> dict[str, Any]:
    rows = store.knn_query(name, body.vectors, body.k, owner=body.owner, tags=body.tags)
    return {"results": [[hit.as_dict() for hit in row] for row in rows]}


@handle(store_router, routes.STORE_SNAPSHOT)
def snapshot(name: NamePath, store: IndexDep) -> dict[str, Any]:
    return {"generation": store.snapshot(name)}
