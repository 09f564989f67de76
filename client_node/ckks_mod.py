"""CKKS secure aggregation on the node side (TenSEAL).

``ckks_update_mod`` wraps the train handler: it turns the node's new weights into its
secure-sum contribution (the update, ``n_i * update`` under declared counts, or under
distributed DP the unscaled noisy gradient sum, with uniform weights followed by the
DP-noised count slot of ``federation.record_count_slot``; no plaintext count leaves
the node unless declared public), encrypts it with the consortium's
CKKS secret context from the node kit, signs and records them
(``client_node.ckks_contribution``), and sends only ciphertexts. When the train message
announces the round's contribution set, the node checks it before it trains (a refusal
charges nothing) and its signature binds that set. ``ckks_decrypt_sum``
answers the coordinator's request to decrypt a *sum*: only a verified sum of at least
``t`` signed contributions of this round, its own among them, once per round, rounded
before it leaves (the coordinator holds only the public context).
"""

from __future__ import annotations

import functools
import logging

import numpy as np
from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from client_node.ckks_contribution import (
    check_announced_set,
    decrypt_verified_sum,
    sign_and_record,
)
from client_node.local_round import step_units
from crypto.ckks_aggregation import encrypt_vector
from embedding_core.errors import FedembedError
from federation.record_count_slot import slot_value, uses_count_slot
from federation.records import CkksField, flatten
from federation.round_settings import RoundSettings, field_key
from federation.wire import (
    ERROR_CODE_NODE_REFUSED,
    AggregationMode,
    ContentKey,
    MetricKey,
    NodeConfigKey,
    WeightingMode,
    as_float,
)
from kits.loader import load_node_kit

__all__ = ["ckks_decrypt_sum", "ckks_update_mod"]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _secret_context(kit_dir: str) -> bytes:
    """The CKKS secret context of the node kit, through the checked loader (hashes, key)."""
    return load_node_kit(kit_dir).ckks_secret_context


@functools.lru_cache(maxsize=4)
def _members(kit_dir: str) -> int:
    """How many contributions a sum may hold: the kit's authorised node keys."""
    return max(1, len(load_node_kit(kit_dir).authorized_nodes))


def _kit_dir(context: Context) -> str:
    kit = context.node_config.get(NodeConfigKey.KIT_DIR.value)
    if not kit:
        raise FedembedError(
            "CKKS aggregation needs the node kit",
            fix="start the SuperNode with --node-config \"kit-dir='/path/to/kit'\"",
        )
    return str(kit)


def _secure_sum_vector(
    update: np.ndarray, settings: RoundSettings, metrics: MetricRecord, context: Context
) -> np.ndarray:
    """What the node adds to the secure sum (``federation.record_count_slot``).

    Distributed DP: ``units * update``, the node's unscaled noisy gradient sum (its unit
    count stays private), so the sum stays linear in every node's noise share; with
    uniform weights followed by the DP-noised count slot. Otherwise: ``n_i * update``
    under declared (public) counts, the update itself under uniform weights.
    """
    if not settings.dp_noise_shares:
        if settings.weighting == WeightingMode.DECLARED_COUNTS:
            return update * as_float(metrics[MetricKey.NUM_EXAMPLES.value])
        return update
    units = step_units(str(context.node_config[NodeConfigKey.DATA_DIR.value]))
    if not uses_count_slot(settings):
        return update * units
    slot = slot_value(
        units=units,
        clip_norm=settings.max_grad_norm,
        noise_multiplier=as_float(metrics[MetricKey.NOISE_MULTIPLIER.value]),
        shares=settings.dp_noise_shares,
    )
    return np.append(update * units, slot)


def ckks_update_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Client mod: encrypt the weighted update when the round asks for CKKS."""
    if msg.metadata.message_type != "train":
        return call_next(msg, context)
    config = msg.content.config_records.get(ContentKey.CONFIG.value)
    if config is None or config.get(field_key("aggregation")) != AggregationMode.CKKS.value:
        return call_next(msg, context)
    kit_dir = _kit_dir(context)
    try:
        check_announced_set(msg, kit_dir=kit_dir)
    except FedembedError as exc:
        logger.warning("ckks: train refused before training: %s", exc.problem)
        return Message(Error(code=ERROR_CODE_NODE_REFUSED, reason=str(exc)), reply_to=msg)
    global_arrays = msg.content.array_records[ContentKey.ARRAYS.value]
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    new_arrays = reply.content.array_records[ContentKey.ARRAYS.value]
    metrics = reply.content.metric_records[ContentKey.METRICS.value]
    update = _secure_sum_vector(
        flatten(new_arrays) - flatten(global_arrays),
        RoundSettings.from_record(dict(config)),
        metrics,
        context,
    )
    chunks = encrypt_vector(update, _secret_context(kit_dir), summands=_members(kit_dir))
    logger.info("ckks: encrypted update values=%d chunks=%d", update.size, len(chunks))
    signed = sign_and_record(msg, context, kit_dir=kit_dir, chunks=chunks, length=int(update.size))
    content = RecordDict(
        {
            ContentKey.CKKS_UPDATE.value: ConfigRecord(
                {
                    CkksField.CHUNKS.value: chunks,
                    CkksField.LENGTH.value: int(update.size),
                    **signed,
                }
            ),
            ContentKey.METRICS.value: MetricRecord(dict(metrics)),
        }
    )
    return Message(content, reply_to=msg)


def ckks_decrypt_sum(msg: Message, context: Context) -> Message:
    """Decrypt only a verified sum of signed contributions (``ckks_contribution``)."""
    kit_dir = _kit_dir(context)
    return decrypt_verified_sum(
        msg, context, kit_dir=kit_dir, secret_context=_secret_context(kit_dir)
    )
