"""What the gateway needs from the store's CKKS collections, in-process or over HTTP.

:class:`secure_index.index.ckks_collections.CkksCollections` satisfies
:class:`CkksBackend` directly (role ``all``); :class:`RemoteCkksStore` satisfies it over
the store's internal API (role ``gateway``; routes ``STORE_CKKS_*`` of
:mod:`index_client.routes`). Bodies are binary where they carry ciphertexts: a block
upload is :func:`index_client.block_format.pack_block_upload` output, a query is the
query ciphertext; answers are JSON with each block's owner, ids and base64 answer
(:func:`encode_scored`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Protocol

from crypto.ckks_search import EncryptedBlock
from index_client import routes
from index_client.block_format import OCTET_STREAM, pack_block_upload
from index_client.routes import Route
from index_client.transport import ServiceTransport
from index_client.vector_space import VectorSpace
from secure_index.errors import StorageError
from secure_index.index.ckks_collections import CkksCollectionInfo, ScoredBlock
from secure_index.service.store_backend import call_store

__all__ = ["CkksBackend", "RemoteCkksStore", "decode_scored", "encode_scored"]


class CkksBackend(Protocol):
    """The CKKS operations the gateway uses."""

    def names(self) -> list[str]:
        """The CKKS collections."""
        ...

    def info(self, name: str) -> CkksCollectionInfo:
        """A collection's sizes."""
        ...

    def create(self, name: str, *, dimension: int, evaluation_context: bytes) -> CkksCollectionInfo:
        """A new, empty collection."""
        ...

    def put_block(
        self,
        name: str,
        owner: str,
        number: int,
        ids: Sequence[str],
        block: EncryptedBlock,
        *,
        space: VectorSpace | None = None,
    ) -> CkksCollectionInfo:
        """Insert or replace a node's block (vectors of encoder ``space``)."""
        ...

    def delete_block(self, name: str, owner: str, number: int) -> bool:
        """Delete a node's block."""
        ...

    def score(self, name: str, query: bytes, *, owner: str | None = None) -> list[ScoredBlock]:
        """Every block's encrypted answer."""
        ...


def encode_scored(blocks: Sequence[ScoredBlock]) -> dict[str, Any]:
    """The JSON answer of a score request."""
    return {
        "blocks": [
            {
                "owner": b.owner,
                "ids": list(b.ids),
                "answer": base64.b64encode(b.answer).decode("ascii"),
            }
            for b in blocks
        ]
    }


def decode_scored(document: dict[str, Any]) -> list[ScoredBlock]:
    """Parse :func:`encode_scored` output."""
    try:
        return [
            ScoredBlock(
                owner=str(b["owner"]),
                ids=tuple(str(i) for i in b["ids"]),
                answer=base64.b64decode(b["answer"], validate=True),
            )
            for b in document["blocks"]
        ]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise StorageError(
            f"the index store's CKKS answer is malformed ({type(exc).__name__})",
            expected="the store's score answer",
            fix="check that gateway and store run the same fedembed version",
        ) from None


class RemoteCkksStore:
    """:class:`CkksBackend` over the store's internal HTTP API.

    Args:
        transport: The store's connection (base URL and token), e.g. ``RemoteStore.transport``.
    """

    def __init__(self, transport: ServiceTransport) -> None:
        self._transport = transport

    def _call(self, route: Route, path: dict[str, str | int] | None = None, **kwargs: Any) -> Any:
        return call_store(self._transport, route, path=path, **kwargs)

    def names(self) -> list[str]:
        """The store's CKKS collections."""
        return [str(n) for n in self._call(routes.STORE_CKKS_LIST)["names"]]

    def info(self, name: str) -> CkksCollectionInfo:
        """A collection's sizes."""
        return CkksCollectionInfo(**self._call(routes.STORE_CKKS_DESCRIBE, {"name": name}))

    def create(self, name: str, *, dimension: int, evaluation_context: bytes) -> CkksCollectionInfo:
        """Create a collection on the store."""
        body = {
            "name": name,
            "dimension": dimension,
            "evaluation_context": base64.b64encode(evaluation_context).decode("ascii"),
        }
        return CkksCollectionInfo(**self._call(routes.STORE_CKKS_CREATE, json=body))

    def put_block(
        self,
        name: str,
        owner: str,
        number: int,
        ids: Sequence[str],
        block: EncryptedBlock,
        *,
        space: VectorSpace | None = None,
    ) -> CkksCollectionInfo:
        """Send a node's block to the store."""
        return CkksCollectionInfo(
            **self._call(
                routes.STORE_CKKS_PUT_BLOCK,
                {"name": name, "owner": owner, "number": number},
                content=pack_block_upload(ids, block, space=space),
                headers={"Content-Type": OCTET_STREAM},
            )
        )

    def delete_block(self, name: str, owner: str, number: int) -> bool:
        """Delete a node's block on the store."""
        path: dict[str, str | int] = {"name": name, "owner": owner, "number": number}
        return bool(self._call(routes.STORE_CKKS_DELETE_BLOCK, path)["deleted"])

    def score(self, name: str, query: bytes, *, owner: str | None = None) -> list[ScoredBlock]:
        """Every block's encrypted answer, from the store."""
        document = self._call(
            routes.STORE_CKKS_SCORE,
            {"name": name},
            content=query,
            params={"owner": owner} if owner is not None else None,
            headers={"Content-Type": OCTET_STREAM},
        )
        return decode_scored(document)
