"""The index store's internal CKKS routes (role ``store``/``all``): only the gateway calls.

The store keeps node-encrypted blocks and scores encrypted queries with the gateway's
evaluation keys; it never holds a key that decrypts a document, a query or a score.
"""

import base64
import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.params import Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from crypto.errors import KeyManagementError
from secure_index.errors import RequestError
from secure_index.index.ckks_collections import CkksCollections
from secure_index.service.ckks_backend import (
    CkksStorePaths,
    encode_scored,
    unpack_block_upload,
)
from secure_index.service.schemas import MAX_DIM, NAME

__all__ = ["install_store_ckks_routes"]

logger = logging.getLogger(__name__)


class _CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
    dimension: int = Field(ge=1, le=MAX_DIM)
    evaluation_context: str = Field(min_length=1)


def install_store_ckks_routes(
    app: FastAPI, ckks: CkksCollections, guard: Sequence[Depends]
) -> None:
    """Adds the CKKS routes to the store app, behind ``guard`` (the gateway's token)."""
    deps = list(guard)

    @app.get(CkksStorePaths.COLLECTIONS, dependencies=deps)
    def names() -> dict[str, Any]:
        return {"names": ckks.names()}

    @app.get(CkksStorePaths.COLLECTION, dependencies=deps)
    def info(name: str) -> dict[str, Any]:
        return asdict(ckks.info(name))

    @app.post(CkksStorePaths.COLLECTIONS, dependencies=deps, status_code=201)
    def create(body: _CreateBody) -> dict[str, Any]:
        try:
            context = base64.b64decode(body.evaluation_context, validate=True)
            return asdict(
                ckks.create(body.name, dimension=body.dimension, evaluation_context=context)
            )
        except (ValueError, KeyManagementError) as exc:  # binascii.Error is a ValueError
            raise RequestError(
                "the evaluation context is not a CKKS evaluation context",
                expected="base64 of CkksSearchKey.evaluation_context()",
                fix="create CKKS collections through the gateway's admin API",
            ) from exc

    @app.put(CkksStorePaths.BLOCK, dependencies=deps)
    async def put_block(name: str, owner: str, number: int, request: Request) -> dict[str, Any]:
        ids, block = unpack_block_upload(await request.body())
        info = await run_in_threadpool(ckks.put_block, name, owner, number, ids, block)
        return asdict(info)

    @app.delete(CkksStorePaths.BLOCK, dependencies=deps)
    def delete_block(name: str, owner: str, number: int) -> dict[str, Any]:
        return {"deleted": ckks.delete_block(name, owner, number)}

    @app.post(CkksStorePaths.SCORE, dependencies=deps)
    async def score(name: str, request: Request, owner: str | None = None) -> dict[str, Any]:
        query = await request.body()
        blocks = await run_in_threadpool(lambda: ckks.score(name, query, owner=owner))
        return encode_scored(blocks)
