"""Upload a node's document vectors to the query gateway (raw text never leaves).

The node embeds its own documents (cached in ``state/``), encrypts the vectors with the
tenant's DCPE key when the collection is DCPE-protected, and sends idempotent batch
upserts with its node key. Document ids are opaque (``<node>:<sha256 of the local id>``
by default) so the index learns nothing from them. A failed batch is retried with
backoff; re-running an upload is safe (upserts).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from client_node.node_data import load_node_data
from embedding_core.encoder import Encoder
from embedding_core.errors import FedembedError

__all__ = ["UploadReport", "opaque_id", "upload_documents"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 256
RETRIES = 5
DOCUMENTS_PATH = "/v1/collections/{collection}/documents"
COLLECTION_PATH = "/v1/collections/{collection}"
DCPE = "dcpe"
CKKS = "ckks"
CKKS_CONTEXT_PATH = "/v1/ckks/public-context"
BLOCK_PATH = "/v1/collections/{collection}/blocks/{number}"


@dataclass(frozen=True)
class UploadReport:
    """What an upload did."""

    collection: str
    documents: int
    inserted: int
    updated: int
    batches: int
    protection: str
    seconds: float


def opaque_id(node_id: str, local_id: str) -> str:
    """An index id that reveals neither the local id nor the text."""
    return f"{node_id}:{hashlib.sha256(f'{node_id}|{local_id}'.encode()).hexdigest()[:32]}"


class _Gateway:
    def __init__(self, url: str, token: str, *, verify: str | bool, timeout_s: float) -> None:
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            verify=verify,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call with retries on transport errors, 429 and 503; a clear error on 4xx."""
        delay = 0.5
        for attempt in range(1, RETRIES + 1):
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    raise FedembedError(
                        f"the gateway at {self._client.base_url} is unreachable ({exc!r})",
                        expected="a running `fedembed index serve`",
                        fix="check the URL and that the service runs",
                    ) from None
            else:
                if response.status_code in (429, 503) and attempt < RETRIES:
                    delay = float(response.headers.get("Retry-After", delay))
                elif response.status_code >= 400:
                    try:
                        err = response.json()["error"]
                    except (ValueError, KeyError, TypeError):
                        err = {"problem": response.text[:200]}
                    raise FedembedError(
                        f"the gateway refused ({response.status_code}): {err.get('problem')}",
                        expected=str(err.get("expected", "")),
                        fix=str(err.get("fix", "")),
                    )
                else:
                    return response
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, method: str, path: str, body: object = None) -> dict[str, object]:
        """A JSON call (see :meth:`request`)."""
        return dict(self.request(method, path, json=body).json())

    def close(self) -> None:
        self._client.close()


def upload_documents(
    node_dir: Path,
    *,
    node_id: str,
    gateway_url: str,
    token: str,
    collection: str,
    encoder: Encoder,
    dcpe_key_file: Path | None = None,
    batch_size: int = DEFAULT_BATCH,
    verify: str | bool = True,
    timeout_s: float = 60.0,
) -> UploadReport:
    """Embed (cached) and upload every document of the node folder."""
    started = time.perf_counter()
    data = load_node_data(node_dir)
    _, _, vectors = data.vectors(encoder)
    gateway = _Gateway(gateway_url, token, verify=verify, timeout_s=timeout_s)
    try:
        info = gateway.call("GET", COLLECTION_PATH.format(collection=collection))
        protection = str(info.get("protection"))
        if int(str(info.get("dimension"))) != vectors.shape[1]:
            raise FedembedError(
                f"collection {collection!r} has dimension {info.get('dimension')}",
                expected=f"dimension {vectors.shape[1]} of this node's encoder",
                fix="upload to a collection created for this model",
            )
        if protection == DCPE:
            if dcpe_key_file is None:
                raise FedembedError(
                    f"collection {collection!r} is DCPE-protected",
                    expected="the tenant's DCPE keyring from the node kit",
                    fix="pass --dcpe-key-file <kit>/dcpe_keyring.json",
                )
            from crypto.dcpe import ScaleAndPerturb
            from crypto.dcpe_keys import DcpeKeyring

            scheme = ScaleAndPerturb(DcpeKeyring.load(dcpe_key_file).current())
            vectors = scheme.encrypt(vectors).vectors
        ids = [opaque_id(node_id, d.id) for d in data.documents]
        if protection == CKKS:
            blocks = _upload_ckks(gateway, collection, ids, vectors)
            return UploadReport(
                collection=collection,
                documents=len(ids),
                inserted=len(ids),
                updated=0,
                batches=blocks,
                protection=protection,
                seconds=time.perf_counter() - started,
            )
        inserted = updated = batches = 0
        for start in range(0, len(ids), batch_size):
            chunk = np.asarray(vectors[start : start + batch_size], dtype=np.float32)
            body = {
                "items": [
                    {"id": doc_id, "vector": vec.tolist()}
                    for doc_id, vec in zip(ids[start : start + batch_size], chunk, strict=True)
                ]
            }
            result = gateway.call("PUT", DOCUMENTS_PATH.format(collection=collection), body)
            inserted += int(str(result["inserted"]))
            updated += int(str(result["updated"]))
            batches += 1
        logger.info(
            "upload: %d documents to %s in %d batches (%s)",
            len(ids),
            collection,
            batches,
            protection,
        )
        return UploadReport(
            collection=collection,
            documents=len(ids),
            inserted=inserted,
            updated=updated,
            batches=batches,
            protection=protection,
            seconds=time.perf_counter() - started,
        )
    finally:
        gateway.close()


def _upload_ckks(gateway: _Gateway, collection: str, ids: list[str], vectors: np.ndarray) -> int:
    """Encrypt the vectors into CKKS blocks on this node and put them as blocks 0..n-1.

    Blocks the node uploaded earlier past the new last one are deleted, so a node whose
    corpus shrank leaves nothing stale. Returns the number of blocks.
    """
    from crypto.ckks_search import CkksDocumentEncryptor
    from secure_index.service.ckks_backend import OCTET_STREAM, pack_block_upload

    public = gateway.request("GET", CKKS_CONTEXT_PATH).content
    unit = np.asarray(vectors, dtype=np.float64)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    encryptor = CkksDocumentEncryptor(public, dimension=unit.shape[1])
    capacity = encryptor.layout.capacity
    number = 0
    for number, start in enumerate(range(0, len(ids), capacity)):
        block = encryptor.encrypt_block(unit[start : start + capacity])
        gateway.request(
            "PUT",
            BLOCK_PATH.format(collection=collection, number=number),
            content=pack_block_upload(ids[start : start + capacity], block),
            headers={"Content-Type": OCTET_STREAM},
        )
        logger.info("upload: %s: block %d (%d documents)", collection, number, block.count)
    count = number + 1 if ids else 0
    stale = count
    while gateway.call("DELETE", BLOCK_PATH.format(collection=collection, number=stale))["deleted"]:
        stale += 1
    return count
