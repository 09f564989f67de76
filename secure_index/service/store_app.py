"""The index store's internal HTTP API (role ``store``): only the gateway calls it.

It holds the encrypted index and answers nearest-neighbour queries on the vectors it is
given; in DCPE collections those are ciphertexts, so this process never sees a
plaintext vector or any text. Every route needs the gateway's bearer token.
"""

import hmac
import logging
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header
from pydantic import BaseModel, ConfigDict, Field

from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.index_store import IndexStore
from secure_index.service.http_errors import ApiError, BodySizeLimit, install_error_handlers
from secure_index.service.schemas import DOC_ID, MAX_DIM, NAME, StoreQuery
from secure_index.service.store_backend import StorePaths, spec_from_dict, spec_to_dict
from secure_index.service.store_ckks_routes import install_store_ckks_routes

__all__ = ["create_store_app"]

logger = logging.getLogger(__name__)

BEARER = "Bearer "
CKKS_LARGE_PATHS = r"/internal/v1/ckks(/[^/]+/blocks/[^/]+/[^/]+)?"  # create, put block


class _SpecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
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
    owner: str = Field(pattern=NAME)
    tags: list[list[str]] | None = None


class _DeleteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, Field(pattern=DOC_ID)]] = Field(min_length=1)
    owner: str = Field(pattern=NAME)


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
    expected = token.encode()

    def gateway(authorization: Annotated[str | None, Header()] = None) -> None:
        given = (authorization or "")[len(BEARER) :].encode() if authorization else b""
        if not (authorization or "").startswith(BEARER) or not hmac.compare_digest(given, expected):
            raise ApiError(
                401,
                "missing or wrong store token",
                expected="Authorization: Bearer <FEDEMBED_INDEX_STORE_TOKEN>",
                fix="only the query gateway may call the store",
                headers={"WWW-Authenticate": "Bearer"},
            )

    guard = [Depends(gateway)]

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "snapshot_error": store.last_snapshot_error}

    @app.get(StorePaths.COLLECTIONS, dependencies=guard)
    def names() -> dict[str, Any]:
        return {"names": store.names()}

    @app.post(StorePaths.COLLECTIONS, dependencies=guard, status_code=201)
    def create(body: _SpecBody) -> dict[str, Any]:
        return asdict(store.create_collection(spec_from_dict(body.model_dump())))

    @app.get(StorePaths.COLLECTION, dependencies=guard)
    def describe(name: str) -> dict[str, Any]:
        return {"spec": spec_to_dict(store.spec(name)), "stats": asdict(store.stats(name))}

    @app.post(StorePaths.UPSERT, dependencies=guard)
    def upsert(name: str, body: _UpsertBody) -> dict[str, Any]:
        result = store.upsert(name, body.ids, body.vectors, owner=body.owner, tags=body.tags)
        return asdict(result)

    @app.post(StorePaths.DELETE, dependencies=guard)
    def delete(name: str, body: _DeleteBody) -> dict[str, Any]:
        return {"deleted": store.delete(name, body.ids, owner=body.owner)}

    @app.post(StorePaths.QUERY, dependencies=guard)
    def query(name: str, body: StoreQuery) -> dict[str, Any]:
        rows = store.knn_query(name, body.vectors, body.k, owner=body.owner, tags=body.tags)
        return {"results": [[hit.as_dict() for hit in row] for row in rows]}

    @app.post(StorePaths.SNAPSHOT, dependencies=guard)
    def snapshot(name: str) -> dict[str, Any]:
        return {"generation": store.snapshot(name)}

    if ckks is not None:
        install_store_ckks_routes(app, ckks, guard)
    return app
