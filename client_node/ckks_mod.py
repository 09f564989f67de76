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

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from crypto.ckks_aggregation import decrypt_vector, encrypt_vector
from embedding_core.errors import FedembedError
from federation.records import CkksField, flatten
from federation.round_settings import field_key
from federation.wire import (
    AggregationMode,
    ContentKey,
    MetricKey,
    NodeConfigKey,
    as_bytes_list,
    as_float,
    as_int,
)
from kits.loader import load_node_kit

__all__ = ["ckks_decrypt_sum", "ckks_update_mod"]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _secret_context(kit_dir: str) -> bytes:
    """The CKKS secret context of the node kit, through the checked loader (hashes, key)."""
    return load_node_kit(kit_dir).ckks_secret_context


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
    if config is None or config.get(field_key("aggregation")) != AggregationMode.CKKS.value:
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
            ContentKey.CKKS_UPDATE.value: ConfigRecord(
                {CkksField.CHUNKS.value: chunks, CkksField.LENGTH.value: int(update.size)}
            ),
            ContentKey.METRICS.value: MetricRecord(dict(metrics)),
        }
    )
    return Message(content, reply_to=msg)


def ckks_decrypt_sum(msg: Message, context: Context) -> Message:
    """Decrypt the coordinator's summed ciphertexts; only the sum is revealed."""
    record = msg.content.config_records[ContentKey.CKKS_SUM.value]
    chunks = as_bytes_list(record[CkksField.CHUNKS.value])
    length = as_int(record[CkksField.LENGTH.value])
    total = decrypt_vector(chunks, _secret_context(_kit_dir(context)), length)
    logger.info("ckks: decrypted aggregate values=%d", length)
    return Message(
        RecordDict(
            {ContentKey.ARRAYS.value: ArrayRecord({CkksField.SUM.value: Array(np.asarray(total))})}
        ),
        reply_to=msg,
    )
