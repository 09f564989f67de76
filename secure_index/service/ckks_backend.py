"""What the gateway needs from the store's CKKS collections, in-process or over HTTP.

:class:`secure_index.index.ckks_collections.CkksCollections` satisfies
:class:`CkksBackend` directly (role ``all``); :class:`RemoteCkksStore` satisfies it over
the store's internal API (role ``gateway``). Bodies are binary where they carry
ciphertexts: a block upload is ``u32 header length || JSON {"ids": [...]} || block``
(:func:`pack_block_upload`), a query is the query ciphertext; answers are JSON with each
block's owner, ids and base64 answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from crypto.ckks_search import EncryptedBlock
from secure_index.errors import RequestError, StorageError
from secure_index.index.ckks_collections import CkksCollectionInfo, ScoredBlock
from secure_index.service.store_backend import call_store

__all__ = [
    "OCTET_STREAM",
    "CkksBackend",
    "CkksStorePaths",
    "RemoteCkksStore",
    "decode_scored",
    "encode_scored",
    "pack_block_upload",
    "unpack_block_upload",
]

OCTET_STREAM = "application/octet-stream"
_HEADER_LENGTH = struct.Struct("<I")
MAX_HEADER_BYTES = 16 << 20


class CkksStorePaths:
    """Routes of the store's internal CKKS API."""

    COLLECTIONS = "/internal/v1/ckks"
    COLLECTION = "/internal/v1/ckks/{name}"
    BLOCK = "/internal/v1/ckks/{name}/blocks/{owner}/{number}"
    SCORE = "/internal/v1/ckks/{name}/score"


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
        self, name: str, owner: str, number: int, ids: Sequence[str], block: EncryptedBlock
    ) -> CkksCollectionInfo:
        """Insert or replace a node's block."""
        ...

    def delete_block(self, name: str, owner: str, number: int) -> bool:
        """Delete a node's block."""
        ...

    def score(self, name: str, query: bytes, *, owner: str | None = None) -> list[ScoredBlock]:
        """Every block's encrypted answer."""
        ...


def pack_block_upload(ids: Sequence[str], block: EncryptedBlock) -> bytes:
    """The binary body of a block upload."""
    header = json.dumps({"ids": list(ids)}).encode()
    return b"".join([_HEADER_LENGTH.pack(len(header)), header, block.to_bytes()])


def unpack_block_upload(body: bytes) -> tuple[list[str], EncryptedBlock]:
    """Parse :func:`pack_block_upload` output (a clear error on anything else)."""
    try:
        (length,) = _HEADER_LENGTH.unpack_from(body, 0)
        if length > MAX_HEADER_BYTES or 4 + length > len(body):
            raise ValueError("header length")
        header = json.loads(body[4 : 4 + length])
        ids = header["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("ids")
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise RequestError(
            f"the block upload is malformed ({exc})",
            expected='u32 header length, JSON {"ids": [...]}, then the encrypted block',
            fix="build the body with pack_block_upload (fedembed node upload does)",
        ) from None
    return ids, EncryptedBlock.from_bytes(memoryview(body)[4 + length :])


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
        client: An ``httpx.Client`` with the store's base URL and bearer token.
    """

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return call_store(self._client, method, path, **kwargs)

    def names(self) -> list[str]:
        """The store's CKKS collections."""
        return [str(n) for n in self._call("GET", CkksStorePaths.COLLECTIONS)["names"]]

    def info(self, name: str) -> CkksCollectionInfo:
        """A collection's sizes."""
        return CkksCollectionInfo(**self._call("GET", CkksStorePaths.COLLECTION.format(name=name)))

    def create(self, name: str, *, dimension: int, evaluation_context: bytes) -> CkksCollectionInfo:
        """Create a collection on the store."""
        body = {
            "name": name,
            "dimension": dimension,
            "evaluation_context": base64.b64encode(evaluation_context).decode("ascii"),
        }
        return CkksCollectionInfo(**self._call("POST", CkksStorePaths.COLLECTIONS, json=body))

    def put_block(
        self, name: str, owner: str, number: int, ids: Sequence[str], block: EncryptedBlock
    ) -> CkksCollectionInfo:
        """Send a node's block to the store."""
        path = CkksStorePaths.BLOCK.format(name=name, owner=owner, number=number)
        content = pack_block_upload(ids, block)
        headers = {"Content-Type": OCTET_STREAM}
        return CkksCollectionInfo(**self._call("PUT", path, content=content, headers=headers))

    def delete_block(self, name: str, owner: str, number: int) -> bool:
        """Delete a node's block on the store."""
        path = CkksStorePaths.BLOCK.format(name=name, owner=owner, number=number)
        return bool(self._call("DELETE", path)["deleted"])

    def score(self, name: str, query: bytes, *, owner: str | None = None) -> list[ScoredBlock]:
        """Every block's encrypted answer, from the store."""
        params = {"owner": owner} if owner is not None else None
        document = self._call(
            "POST",
            CkksStorePaths.SCORE.format(name=name),
            content=query,
            params=params,
            headers={"Content-Type": OCTET_STREAM},
        )
        return decode_scored(document)
