"""The index store's internal CKKS routes (role ``store``/``all``): only the gateway calls.

The store keeps node-encrypted blocks and scores encrypted queries with the gateway's
evaluation keys; it never holds a key that decrypts a document, a query or a score.
Every route needs the store token (:func:`~secure_index.service.deps.require_gateway`);
paths and methods come from :mod:`index_client.routes`; the gateway's client of these
routes is :class:`~secure_index.service.ckks_backend.RemoteCkksStore`.
"""

import base64
import functools
import logging
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from crypto.errors import KeyManagementError
from index_client import routes
from index_client.block_format import block_upload_space, unpack_block_upload
from secure_index.errors import RequestError
from secure_index.service.ckks_backend import encode_scored
from secure_index.service.deps import CkksStoreDep, require_gateway
from secure_index.service.routing import handle
from secure_index.service.schemas import MAX_DIM, Name, NamePath, OwnerQuery

__all__ = ["CKKS_LARGE_PATHS", "store_ckks_router"]

logger = logging.getLogger(__name__)

CKKS_LARGE_PATHS = routes.paths_pattern(
    routes.STORE_CKKS_CREATE, routes.STORE_CKKS_PUT_BLOCK
)  # evaluation contexts and blocks

store_ckks_router = APIRouter(dependencies=[Depends(require_gateway)])


class _CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    dimension: int = Field(ge=1, le=MAX_DIM)
    evaluation_context: str = Field(min_length=1)


@handle(store_ckks_router, routes.STORE_CKKS_LIST)
def names(ckks: CkksStoreDep) -> dict[str, Any]:
    return {"names": ckks.names()}


@handle(store_ckks_router, routes.STORE_CKKS_DESCRIBE)
def info(name: NamePath, ckks: CkksStoreDep) -> dict[str, Any]:
    return asdict(ckks.info(name))


@handle(store_ckks_router, routes.STORE_CKKS_CREATE, status_code=201)
def create(body: _CreateBody, ckks: CkksStoreDep) -> dict[str, Any]:
    try:
        context = base64.b64decode(body.evaluation_context, validate=True)
        return asdict(ckks.create(body.name, dimension=body.dimension, evaluation_context=context))
    except (ValueError, KeyManagementError) as exc:  # binascii.Error is a ValueError
        raise RequestError(
            "the evaluation context is not a CKKS evaluation context",
            expected="base64 of CkksSearchKey.evaluation_context()",
            fix="create CKKS collections through the gateway's admin API",
        ) from exc


@handle(store_ckks_router, routes.STORE_CKKS_PUT_BLOCK)
async def put_block(
    name: NamePath, owner: NamePath, number: int, request: Request, ckks: CkksStoreDep
) -> dict[str, Any]:
    body = await request.body()
    ids, block = unpack_block_upload(body)
    space = block_upload_space(body)
    info = await run_in_threadpool(
        functools.partial(ckks.put_block, space=space), name, owner, number, ids, block
    )
    return asdict(info)


@handle(store_ckks_router, routes.STORE_CKKS_DELETE_BLOCK)
def delete_block(
    name: NamePath, owner: NamePath, number: int, ckks: CkksStoreDep
) -> dict[str, Any]:
    return {"deleted": ckks.delete_block(name, owner, number)}


@handle(store_ckks_router, routes.STORE_CKKS_SCORE)
async def score(
    name: NamePath, request: Request, ckks: CkksStoreDep, owner: OwnerQuery = None
) -> dict[str, Any]:
    query = await request.body()
    blocks = await run_in_threadpool(lambda: ckks.score(name, query, owner=owner))
    return encode_scored(blocks)
