"""CKKS secure aggregation on the node side (TenSEAL).

``ckks_update_mod`` wraps the train handler: it turns the node's new weights into a
weighted update ``num_examples * (new - global)``, encrypts it with the consortium's
CKKS secret context from the node kit, and sends only ciphertexts. ``ckks_decrypt_sum``
answers the coordinator's request to decrypt the *sum* of all nodes' ciphertexts (the
coordinator holds only the public context and cannot decrypt anything itself).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from crypto.ckks_aggregation import decrypt_vector, encrypt_vector
from embedding_core.errors import FedembedError
from federation.wire import (
    AggregationMode,
    ConfigKey,
    ContentKey,
    MetricKey,
    NodeConfigKey,
    as_bytes_list,
    as_float,
    as_int,
)

__all__ = ["CKKS_SECRET_FILE", "ckks_decrypt_sum", "ckks_update_mod", "flatten", "unflatten"]

logger = logging.getLogger(__name__)

CKKS_SECRET_FILE = "ckks_secret.ctx"
CHUNKS = "chunks"
LENGTH = "length"
SUM = "sum"


def flatten(arrays: ArrayRecord) -> np.ndarray:
    """Concatenate an ArrayRecord's arrays (in key order) into one float64 vector."""
    return np.concatenate(
        [np.asarray(a, dtype=np.float64).ravel() for a in arrays.to_numpy_ndarrays()]
    )


def unflatten(vector: np.ndarray, like: ArrayRecord) -> ArrayRecord:
    """Split a flat vector back into arrays shaped like ``like`` (float32)."""
    out: dict[str, Array] = {}
    offset = 0
    for key, ref in zip(like.keys(), like.to_numpy_ndarrays(), strict=True):
        size = ref.size
        out[key] = Array(vector[offset : offset + size].reshape(ref.shape).astype(np.float32))
        offset += size
    if offset != vector.size:
        raise FedembedError(f"aggregate has {vector.size} values, model has {offset}")
    return ArrayRecord(out)


@functools.lru_cache(maxsize=4)
def _secret_context(kit_dir: str) -> bytes:
    path = Path(kit_dir) / CKKS_SECRET_FILE
    if not path.is_file():
        raise FedembedError(
            f"CKKS secret context {path} not found",
            expected="a node kit written by `fedembed coordinator provision`",
            fix="pass --node-config \"kit-dir='/path/to/node/kit'\"",
        )
    return path.read_bytes()


def _kit_dir(context: Context) -> str:
    kit = context.node_config.get(NodeConfigKey.KIT_DIR.value)
    if not kit:
        raise FedembedError(
            "CKKS aggregation needs the node kit",
            fix="start the SuperNode with --node-config \"kit-dir='/path/to/kit'\"",
        )
    return str(kit)


def ckks_update_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Client mod: encrypt the weighted update when the round asks for CKKS."""
    if msg.metadata.message_type != "train":
        return call_next(msg, context)
    config = msg.content.config_records.get(ContentKey.CONFIG.value)
    if config is None or config.get(ConfigKey.AGGREGATION.value) != AggregationMode.CKKS.value:
        return call_next(msg, context)
    global_arrays = msg.content.array_records[ContentKey.ARRAYS.value]
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    new_arrays = reply.content.array_records[ContentKey.ARRAYS.value]
    metrics = reply.content.metric_records[ContentKey.METRICS.value]
    weight = as_float(metrics[MetricKey.NUM_EXAMPLES.value])
    update = flatten(new_arrays) - flatten(global_arrays)
    chunks = encrypt_vector(update, _secret_context(_kit_dir(context)), scale=weight)
    logger.info("ckks: encrypted update values=%d chunks=%d", update.size, len(chunks))
    content = RecordDict(
        {
            ContentKey.CKKS_UPDATE.value: ConfigRecord({CHUNKS: chunks, LENGTH: int(update.size)}),
            ContentKey.METRICS.value: MetricRecord(dict(metrics)),
        }
    )
    return Message(content, reply_to=msg)


def ckks_decrypt_sum(msg: Message, context: Context) -> Message:
    """Decrypt the coordinator's summed ciphertexts; only the sum is revealed."""
    record = msg.content.config_records[ContentKey.CKKS_SUM.value]
    chunks = as_bytes_list(record[CHUNKS])
    length = as_int(record[LENGTH])
    total = decrypt_vector(chunks, _secret_context(_kit_dir(context)), length)
    logger.info("ckks: decrypted aggregate values=%d", length)
    return Message(
        RecordDict({ContentKey.ARRAYS.value: ArrayRecord({SUM: Array(np.asarray(total))})}),
        reply_to=msg,
    )
