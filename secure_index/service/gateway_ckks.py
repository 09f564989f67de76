"""The query gateway's CKKS search: encrypt the query, let the store score, decrypt, rank.

The gateway holds the CKKS secret key (:class:`~crypto.ckks_search.CkksSearchKey`,
``FEDEMBED_INDEX_CKKS_KEY_FILE``). It gives the store the evaluation keys when an admin
creates a CKKS collection, gives nodes the public context, forwards nodes' encrypted
blocks, and answers partner queries: the store returns one encrypted score vector per
block, the gateway decrypts them and returns the top ``k`` ids, owners and scores. The
store never holds a key that decrypts anything.

Routes (added to the gateway app when it has a CKKS key):

* ``POST /v1/admin/ckks-collections`` (admin token): create a CKKS collection;
* ``GET /v1/ckks/public-context`` (node key): the public context nodes encrypt with;
* ``PUT /v1/collections/{c}/blocks/{number}`` (node key): insert or replace the calling
  node's block (binary body, :func:`~secure_index.service.ckks_backend.pack_block_upload`);
* ``DELETE /v1/collections/{c}/blocks/{number}`` (node key): delete it.

Partner queries use the usual ``POST /v1/collections/{c}/query``.
"""

import logging
from dataclasses import asdict
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from crypto.ckks_search_key import CkksSearchKey
from secure_index.index.ckks_collections import METRIC, CkksCollectionInfo
from secure_index.index.collection_spec import Hit
from secure_index.service.audit_log import AuditLog
from secure_index.service.ckks_backend import OCTET_STREAM, CkksBackend, unpack_block_upload
from secure_index.service.credentials import Credential, Role
from secure_index.service.gateway_access import ADMIN_ACTOR, Action, Decision, GatewayAccess
from secure_index.service.gateway_responses import ERROR_RESPONSES
from secure_index.service.http_errors import ApiError
from secure_index.service.schemas import NAME, CollectionInfo

__all__ = [
    "CKKS_UPLOAD_PATHS",
    "CkksGatewaySearch",
    "ckks_collection_info",
    "install_gateway_ckks_routes",
]

logger = logging.getLogger(__name__)

CKKS_UPLOAD_PATHS = r"/v1/collections/[^/]+/blocks/[^/]+"  # bodies of ciphertext blocks
PUBLIC_CONTEXT_PATH = "/v1/ckks/public-context"
PROTECTION = "ckks"


class CkksCollectionCreate(BaseModel):
    """Body of ``POST /v1/admin/ckks-collections``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)


class CkksGatewaySearch:
    """The gateway's side of CKKS collections.

    Args:
        key: The gateway's CKKS secret key.
        backend: The store's CKKS collections (in-process or remote).
    """

    def __init__(self, key: CkksSearchKey, backend: CkksBackend) -> None:
        self.key = key
        self.backend = backend
        self._public = key.public_context()

    @property
    def public_context(self) -> bytes:
        """What nodes encrypt with."""
        return self._public

    def has(self, name: str) -> bool:
        """Whether ``name`` is a CKKS collection."""
        return name in self.backend.names()

    def search(
        self, name: str, vector: np.ndarray, k: int, *, owner: str | None = None
    ) -> list[Hit]:
        """The ``k`` best documents for one unit query vector, scored under encryption."""
        query = self.key.encrypt_query(np.asarray(vector, dtype=np.float64).reshape(-1))
        blocks = self.backend.score(name, query, owner=owner)
        if not blocks:
            return []
        scores = self.key.decrypt_scores([b.answer for b in blocks], [len(b.ids) for b in blocks])
        ids = [doc_id for b in blocks for doc_id in b.ids]
        owners = [b.owner for b in blocks for _ in b.ids]
        best = np.argsort(-scores, kind="stable")[:k]
        logger.info(
            "ckks-search: %s: ranked %d documents in %d blocks", name, len(ids), len(blocks)
        )
        return [Hit.of(ids[i], owners[i], float(scores[i])) for i in best]


def ckks_collection_info(info: CkksCollectionInfo) -> CollectionInfo:
    """A CKKS collection in the gateway's collection answer (protection ``ckks``)."""
    return CollectionInfo(
        name=info.name,
        dimension=info.dimension,
        metric=METRIC,
        protection=PROTECTION,
        documents=info.documents,
        generation=0,
        last_seq=0,
        folded_seq=0,
    )


def install_gateway_ckks_routes(
    app: FastAPI, *, ckks: CkksGatewaySearch, audit: AuditLog, access: GatewayAccess
) -> None:
    """Adds the CKKS admin and node routes to the gateway app."""
    caller, authorise = access.caller, access.authorise

    @app.post(
        "/v1/admin/ckks-collections",
        dependencies=[Depends(access.admin)],
        status_code=201,
        responses=ERROR_RESPONSES,
    )
    def create(body: CkksCollectionCreate) -> dict[str, Any]:
        """Create a CKKS collection scored with the gateway's evaluation keys."""
        info = ckks.backend.create(
            body.name,
            dimension=ckks.key.layout.dimension,
            evaluation_context=ckks.key.evaluation_context(),
        )
        audit.append(
            actor=ADMIN_ACTOR,
            role=ADMIN_ACTOR,
            action=Action.CREATE_COLLECTION,
            collection=body.name,
            decision=Decision.ALLOW,
            detail={"dimension": info.dimension, "protection": "ckks"},
        )
        return asdict(info)

    @app.get(PUBLIC_CONTEXT_PATH, responses=ERROR_RESPONSES)
    def public_context(cred: Annotated[Credential, Depends(caller)]) -> Response:
        """The public context (public key, no secret) nodes encrypt their blocks with."""
        if cred.role is not Role.NODE:
            raise ApiError(
                403,
                f"a {cred.role} key cannot fetch the CKKS public context",
                expected="a node key",
                fix="nodes fetch it to encrypt their blocks; partners only query",
            )
        return Response(content=ckks.public_context, media_type=OCTET_STREAM)

    @app.put("/v1/collections/{collection}/blocks/{number}", responses=ERROR_RESPONSES)
    async def put_block(
        collection: str,
        number: int,
        request: Request,
        cred: Annotated[Credential, Depends(caller)],
    ) -> dict[str, Any]:
        """Insert or replace the calling node's encrypted block ``number`` (durable)."""
        authorise(cred, Role.NODE, Action.UPLOAD, collection)
        ids, block = unpack_block_upload(await request.body())
        info = await run_in_threadpool(
            ckks.backend.put_block, collection, cred.name, number, ids, block
        )
        access.allowed(cred, Action.UPLOAD, collection, {"block": number, "items": len(ids)})
        return asdict(info)

    @app.delete("/v1/collections/{collection}/blocks/{number}", responses=ERROR_RESPONSES)
    def delete_block(
        collection: str, number: int, cred: Annotated[Credential, Depends(caller)]
    ) -> dict[str, Any]:
        """Delete the calling node's block ``number``."""
        authorise(cred, Role.NODE, Action.DELETE, collection)
        deleted = ckks.backend.delete_block(collection, cred.name, number)
        access.allowed(cred, Action.DELETE, collection, {"block": number, "deleted": deleted})
        return {"collection": collection, "block": number, "deleted": deleted}
