"""The query gateway's client for partners and nodes: query, upload, delete, CKKS blocks.

A partner key queries (ids, owners, ranks and, as far as its score release allows,
scores come back, never vectors or text; vector queries need the key's grant); a node
key uploads its own documents' protected vectors (idempotent batch upserts), deletes its
own documents and, for CKKS collections, fetches the public context and puts the blocks
it encrypted. The gateway decides what a key may do; its refusals arrive as
:class:`~index_client.errors.GatewayError` subclasses with its problem, expected and fix::

    with GatewayClient(url, partner_key) as gateway:
        for hit in gateway.query("scifact", "vitamin D and bone density", k=5).hits:
            print(hit.rank, hit.doc_id, hit.owner, hit.score)  # score None by default
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from index_client import routes
from index_client.answers import CkksCollection, Collection, SearchResult, UploadReceipt, list_of
from index_client.block_format import OCTET_STREAM, pack_block_upload
from index_client.transport import ServiceClient, TlsVerify
from index_client.vector_space import VectorSpace

if TYPE_CHECKING:  # TenSEAL loads with it; the caller made the block
    from crypto.ckks_search import EncryptedBlock

__all__ = ["GatewayClient"]


def _deleted(document: Any) -> int:
    return int(document["deleted"])


class GatewayClient(ServiceClient):
    """A partner's or node's client of the query gateway.

    Args:
        base_url: The gateway's URL.
        api_key: The partner or node key the operator issued.
        timeout_s: Per-request timeout.
        verify: TLS trust: the CA certificate file that signed the gateway's (only
            that CA is trusted), an ``ssl.SSLContext``, or True (the system trust store).
        retries: Extra attempts after a transport error, a 429 or a 503 (0: none).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 60.0,
        verify: TlsVerify = True,
        retries: int = 0,
    ) -> None:
        super().__init__(base_url, api_key, timeout_s=timeout_s, verify=verify, retries=retries)

    def collections(self) -> list[Collection]:
        """The collections this key may use."""
        return self._transport.call(routes.LIST_COLLECTIONS, list_of(Collection.from_json))

    def describe(self, collection: str) -> Collection:
        """A collection's dimension, metric, protection and size."""
        return self._transport.call(
            routes.DESCRIBE_COLLECTION, Collection.from_json, path={"collection": collection}
        )

    def query(
        self,
        collection: str,
        text: str | None = None,
        *,
        vector: ArrayLike | None = None,
        k: int = 10,
        owner: str | None = None,
        tags: Sequence[str] = (),
    ) -> SearchResult:
        """The ``k`` best documents for ``text`` (embedded by the gateway) or ``vector``.

        Hits come in rank order with ``rank`` 1..k; their ``score`` is ``None`` unless the
        key's score release is ``coarse`` or ``exact``. A ``vector`` query needs the key's
        ``vector_queries`` grant (else :class:`~index_client.errors.PermissionDeniedError`);
        a spent query budget is a :class:`~index_client.errors.RateLimitedError` (429).

        Args:
            collection: The collection to search.
            text: The query text (exactly one of ``text`` and ``vector``).
            vector: The query vector, of the collection's dimension.
            k: How many results.
            owner: Only documents of this node.
            tags: Only documents carrying every tag (not in CKKS collections).
        """
        body: dict[str, Any] = {"k": k}
        if text is not None:
            body["text"] = text
        if vector is not None:
            body["vector"] = np.asarray(vector, dtype=np.float64).reshape(-1).tolist()
        filters: dict[str, Any] = {}
        if owner is not None:
            filters["owner"] = owner
        if tags:
            filters["tags"] = list(tags)
        if filters:
            body["filters"] = filters
        return self._transport.call(
            routes.QUERY, SearchResult.from_json, path={"collection": collection}, json=body
        )

    def upsert_documents(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: ArrayLike,
        *,
        tags: Sequence[Sequence[str]] | None = None,
        space: VectorSpace | None = None,
    ) -> UploadReceipt:
        """Insert or replace this node's documents (one batch; durable when it returns).

        Args:
            collection: The target collection.
            ids: The documents' opaque ids.
            vectors: One vector per id (DCPE ciphertexts for DCPE collections).
            tags: One list of tags per id.
            space: The encoder space of the vectors (``VectorSpace.of(encoder)``); the
                collection refuses vectors of another space (409, ``ConflictError``).
                None: the torch space, as every client before spaces were recorded.

        Raises:
            ValueError: When ``vectors`` is not one row per id or ``tags`` not one list per id.
        """
        array = np.asarray(vectors, dtype=np.float32)
        if (
            array.ndim != 2
            or len(array) != len(ids)
            or (tags is not None and len(tags) != len(ids))
        ):
            raise ValueError(
                f"{len(ids)} ids, vectors of shape {array.shape} and "
                f"{'no' if tags is None else len(tags)} tag lists: "
                "one vector (a row) and one tag list per id"
            )
        items: list[dict[str, Any]] = [
            {"id": doc_id, "vector": vector.tolist()}
            for doc_id, vector in zip(ids, array, strict=True)
        ]
        if tags is not None:
            for item, item_tags in zip(items, tags, strict=True):
                item["tags"] = list(item_tags)
        return self._transport.call(
            routes.UPSERT_DOCUMENTS,
            UploadReceipt.from_json,
            path={"collection": collection},
            json={"items": items, **(space.as_fields() if space is not None else {})},
        )

    def delete_documents(self, collection: str, ids: Sequence[str]) -> int:
        """Delete this node's documents ``ids``; returns how many existed (durable)."""
        return self._transport.call(
            routes.DELETE_DOCUMENTS,
            _deleted,
            path={"collection": collection},
            json={"ids": list(ids)},
        )

    def ckks_public_context(self) -> bytes:
        """The CKKS public context (public key, no secret) this node encrypts blocks with."""
        return self._transport.send(routes.CKKS_PUBLIC_CONTEXT).content

    def upload_block(
        self,
        collection: str,
        number: int,
        ids: Sequence[str],
        block: EncryptedBlock,
        *,
        space: VectorSpace | None = None,
    ) -> CkksCollection:
        """Insert or replace this node's encrypted block ``number`` of ``ids`` (durable).

        ``space``: the encoder space of the encrypted vectors; a block of another space
        than the collection's other blocks is refused (409, ``ConflictError``).
        """
        return self._transport.call(
            routes.PUT_BLOCK,
            CkksCollection.from_json,
            path={"collection": collection, "number": number},
            content=pack_block_upload(ids, block, space=space),
            headers={"Content-Type": OCTET_STREAM},
        )

    def delete_block(self, collection: str, number: int) -> bool:
        """Delete this node's block ``number``; whether it existed."""
        return bool(
            self._transport.call(
                routes.DELETE_BLOCK,
                _deleted,
                path={"collection": collection, "number": number},
            )
        )
