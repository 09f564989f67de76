"""The query gateway's CKKS routes (added when the gateway holds a CKKS key).

* ``POST /v1/admin/ckks-collections`` (admin token): create a CKKS collection;
* ``GET /v1/ckks/public-context`` (node key): the public context nodes encrypt with;
* ``PUT /v1/collections/{c}/blocks/{number}`` (node key): insert or replace the calling
  node's block (binary body, :func:`index_client.block_format.pack_block_upload`);
* ``DELETE /v1/collections/{c}/blocks/{number}`` (node key): delete it.

A block write is audited before it is made, as every write of the gateway
(:meth:`~secure_index.service.gateway_access.GatewayAccess.allowed_block_write`): the
record is durable when the store is called, and the node gets its answer only after both.

Partner queries use the usual ``POST /v1/collections/{c}/query``
(:mod:`secure_index.service.gateway_data_routes`); the search itself is
:class:`~secure_index.service.gateway_ckks.CkksGatewaySearch`.
"""

import functools
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from index_client import routes
from index_client.block_format import OCTET_STREAM, block_upload_space, unpack_block_upload
from secure_index.errors import CollectionExistsError
from secure_index.service.credentials import CredentialRole
from secure_index.service.deps import (
    AccessDep,
    AuditDep,
    CallerDep,
    CkksDep,
    StoreDep,
    require_admin,
)
from secure_index.service.gateway_access import Action
from secure_index.service.gateway_admin_routes import record_admin_action
from secure_index.service.gateway_ckks import PROTECTION
from secure_index.service.gateway_responses import ERROR_RESPONSES
from secure_index.service.http_errors import ApiError
from secure_index.service.routing import handle
from secure_index.service.schemas import Name, NamePath

__all__ = ["CKKS_UPLOAD_PATHS", "ckks_router"]

CKKS_UPLOAD_PATHS = routes.PUT_BLOCK.pattern  # bodies of ciphertext blocks

ckks_router = APIRouter(responses=ERROR_RESPONSES)


class CkksCollectionCreate(BaseModel):
    """Body of ``POST /v1/admin/ckks-collections``."""

    model_config = ConfigDict(extra="forbid")
    name: Name


@handle(
    ckks_router,
    routes.CREATE_CKKS_COLLECTION,
    status_code=201,
    dependencies=[Depends(require_admin)],
)
def create(
    body: CkksCollectionCreate, ckks: CkksDep, store: StoreDep, audit: AuditDep
) -> dict[str, Any]:
    """Create a CKKS collection scored with the gateway's evaluation keys."""
    if ckks.has(body.name) or body.name in store.names():  # before exporting megabytes
        raise CollectionExistsError(  # of evaluation keys; one name, one collection
            f"a collection named {body.name!r} exists",
            expected="a name no collection has",
            fix="use the existing collection or choose another name",
        )
    info = ckks.backend.create(
        body.name,
        dimension=ckks.key.layout.dimension,
        evaluation_context=ckks.key.evaluation_context(),
    )
    record_admin_action(
        audit,
        Action.CREATE_COLLECTION,
        body.name,
        {"dimension": info.dimension, "protection": PROTECTION},
    )
    return asdict(info)


@handle(ckks_router, routes.CKKS_PUBLIC_CONTEXT)
def public_context(cred: CallerDep, ckks: CkksDep) -> Response:
    """The public context (public key, no secret) nodes encrypt their blocks with."""
    if cred.role is not CredentialRole.NODE:
        raise ApiError(
            403,
            f"a {cred.role} key cannot fetch the CKKS public context",
            expected="a node key",
            fix="nodes fetch it to encrypt their blocks; partners only query",
        )
    return Response(content=ckks.public_context, media_type=OCTET_STREAM)


@handle(ckks_router, routes.PUT_BLOCK)
async def put_block(
    collection: NamePath,
    number: int,
    request: Request,
    cred: CallerDep,
    access: AccessDep,
    ckks: CkksDep,
) -> dict[str, Any]:
    """Insert or replace the calling node's encrypted block ``number`` (durable)."""
    access.authorise(cred, CredentialRole.NODE, Action.UPLOAD, collection)
    body = await request.body()
    ids, block = unpack_block_upload(body)
    space = block_upload_space(body)
    # durable before the write (an fsync'ed append: off the event loop, like the write)
    await run_in_threadpool(
        access.allowed_block_write, cred, Action.UPLOAD, collection, number, ids
    )
    info = await run_in_threadpool(
        functools.partial(ckks.backend.put_block, space=space),
        collection,
        cred.name,
        number,
        ids,
        block,
    )
    return asdict(info)


@handle(ckks_router, routes.DELETE_BLOCK)
def delete_block(
    collection: NamePath, number: int, cred: CallerDep, access: AccessDep, ckks: CkksDep
) -> dict[str, Any]:
    """Delete the calling node's block ``number``."""
    access.authorise(cred, CredentialRole.NODE, Action.DELETE, collection)
    access.allowed_block_write(cred, Action.DELETE, collection, number)  # before the write
    deleted = ckks.backend.delete_block(collection, cred.name, number)
    return {"collection": collection, "block": number, "deleted": deleted}
