"""Upload a node's document vectors to the query gateway (raw text never leaves).

The node embeds its own documents (cached in ``state/``), encrypts the vectors with the
tenant's DCPE key when the collection is DCPE-protected, and sends idempotent batch
upserts with its node key through :class:`index_client.GatewayClient`. Every upsert
names the encoder space of its vectors (backend and model): a collection records the
first one and refuses vectors of any other (``index_client.vector_space``). Document ids are
opaque (``<node>:<sha256 of the local id>`` by default) so the index learns nothing from
them. A failed batch is retried with backoff; re-running an upload is safe (upserts). The
documents sent are counted by a :class:`~embedding_core.progress.Progress` (a bar on a
terminal, a log line every 10 s otherwise; counts only, never texts).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from client_node.node_data import load_node_data
from crypto.ckks_search import CkksDocumentEncryptor
from embedding_core.encoder import Encoder
from embedding_core.errors import FedembedError
from embedding_core.progress import Progress
from index_client.gateway_client import GatewayClient
from index_client.vector_space import VectorSpace

__all__ = ["UploadReport", "opaque_id", "upload_documents"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 256
ATTEMPTS = 5  # per request: transport errors, 429 and 503 are retried with backoff
DCPE = "dcpe"
CKKS = "ckks"


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
    encoder_backend: str = ""  # which encoder backend made the vectors
    space: str = ""  # their encoder space (Encoder.space), recorded by the collection


def opaque_id(node_id: str, local_id: str) -> str:
    """An index id that reveals neither the local id nor the text."""
    return f"{node_id}:{hashlib.sha256(f'{node_id}|{local_id}'.encode()).hexdigest()[:32]}"


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
    space = VectorSpace.of(encoder)
    gateway = GatewayClient(
        gateway_url, token, verify=verify, timeout_s=timeout_s, retries=ATTEMPTS - 1
    )
    try:
        info = gateway.describe(collection)
        protection = info.protection
        if info.dimension != vectors.shape[1]:
            raise FedembedError(
                f"collection {collection!r} has dimension {info.dimension}",
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
            blocks = _upload_ckks(gateway, collection, ids, vectors, space)
            return UploadReport(
                collection=collection,
                documents=len(ids),
                inserted=len(ids),
                updated=0,
                batches=blocks,
                protection=protection,
                seconds=time.perf_counter() - started,
                encoder_backend=space.encoder_backend,
                space=space.space,
            )
        inserted = updated = batches = 0
        progress = Progress(len(ids), what=f"upload to {collection}", unit="documents")
        for start in range(0, len(ids), batch_size):
            result = gateway.upsert_documents(
                collection,
                ids[start : start + batch_size],
                np.asarray(vectors[start : start + batch_size], dtype=np.float32),
                space=space,
            )
            inserted += result.inserted
            updated += result.updated
            batches += 1
            progress.advance(min(batch_size, len(ids) - start))
        progress.close()
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
            encoder_backend=space.encoder_backend,
            space=space.space,
        )
    finally:
        gateway.close()


def _upload_ckks(
    gateway: GatewayClient,
    collection: str,
    ids: list[str],
    vectors: np.ndarray,
    space: VectorSpace,
) -> int:
    """Encrypt the vectors into CKKS blocks on this node and put them as blocks 0..n-1.

    Blocks the node uploaded earlier past the new last one are deleted, so a node whose
    corpus shrank leaves nothing stale. Returns the number of blocks.
    """
    public = gateway.ckks_public_context()
    unit = np.asarray(vectors, dtype=np.float64)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    encryptor = CkksDocumentEncryptor(public, dimension=unit.shape[1])
    capacity = encryptor.layout.capacity
    number = 0
    with Progress(len(ids), what=f"upload to {collection} (CKKS)", unit="documents") as progress:
        for number, start in enumerate(range(0, len(ids), capacity)):
            block = encryptor.encrypt_block(unit[start : start + capacity])
            gateway.upload_block(
                collection, number, ids[start : start + capacity], block, space=space
            )
            logger.debug("upload: %s: block %d (%d documents)", collection, number, block.count)
            progress.advance(block.count)
    count = number + 1 if ids else 0
    stale = count
    while gateway.delete_block(collection, stale):
        stale += 1
    return count
