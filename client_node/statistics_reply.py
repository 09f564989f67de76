"""What the node's statistics rounds (k-means, the classifier head) share.

The node's name, its record encoder (one per backend and cache in a warm process) and
the encrypted, signed reply that carries a statistics vector into the CKKS secure sum,
exactly as a training update is carried (:mod:`client_node.ckks_mod`).
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from numpy.typing import NDArray

from client_node.node_data import STATE_DIR
from embedding_core.cache import CACHE_DIR_ENV
from embedding_core.errors import FedembedError
from federation.records import CkksField
from federation.wire import ContentKey, NodeConfigKey

if TYPE_CHECKING:
    from client_node.analysis.record_vectors import RecordEncoder
    from kits.layout import NodeKit

__all__ = [
    "EMBEDDING_CACHE_DIR",
    "encrypted_reply",
    "node_cache_dir",
    "node_name_of",
    "record_encoder",
]

EMBEDDING_CACHE_DIR = "embeddings"
"""The node's embedding cache for its statistics records, under its state folder."""


@functools.lru_cache(maxsize=4)
def record_encoder(backend: str, cache_dir: Path) -> RecordEncoder:
    """One encoder per backend and cache (a warm process encodes every round with it)."""
    from client_node.analysis.record_vectors import RecordEncoder

    return RecordEncoder(encoder_backend=backend, cache_dir=cache_dir)


def node_cache_dir(node_dir: Path) -> Path:
    """The records' embedding cache: ``$FEDEMBED_CACHE_DIR``, else the node's state folder.

    As the node's training data.
    """
    return Path(os.environ.get(CACHE_DIR_ENV) or node_dir / STATE_DIR / EMBEDDING_CACHE_DIR)


def node_name_of(context: Context) -> str:
    """The node's name from its node config, else ``<host>-<node id>``."""
    name = context.node_config.get(NodeConfigKey.NODE_NAME.value)
    return str(name) if name else f"{socket.gethostname()}-{context.node_id}"


@functools.lru_cache(maxsize=4)
def _node_kit(kit_dir: str) -> NodeKit:
    """The node kit through the checked loader (hashes, secret context), once a process."""
    from kits.loader import load_node_kit

    return load_node_kit(kit_dir)


def encrypted_reply(
    msg: Message, context: Context, vector: NDArray[np.float64], metrics: dict[str, float]
) -> Message:
    """Encrypt and sign ``vector`` as the node's CKKS contribution (as a training update).

    As ``ckks_mod.ckks_update_mod``: encrypted under the consortium's secret context for
    sums of up to every authorised node, signed and recorded for this run and round.
    """
    from client_node.ckks_contribution import sign_and_record
    from crypto.ckks_aggregation import encrypt_vector

    kit_dir = context.node_config.get(NodeConfigKey.KIT_DIR.value)
    if not kit_dir:
        raise FedembedError(
            "CKKS aggregation needs the node kit",
            fix="start the SuperNode with --node-config \"kit-dir='/path/to/kit'\"",
        )
    kit = _node_kit(str(kit_dir))
    summands = max(1, len(kit.authorized_nodes))
    chunks = encrypt_vector(vector, kit.ckks_secret_context, summands=summands)
    signed = sign_and_record(
        msg, context, kit_dir=str(kit_dir), chunks=chunks, length=int(vector.size)
    )
    record = ConfigRecord(
        {CkksField.CHUNKS.value: chunks, CkksField.LENGTH.value: int(vector.size), **signed}
    )
    return Message(
        RecordDict(
            {
                ContentKey.CKKS_UPDATE.value: record,
                ContentKey.METRICS.value: MetricRecord(metrics),  # type: ignore[arg-type]
            }
        ),
        reply_to=msg,
    )
