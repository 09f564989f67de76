"""The train message a coordinator sends, built as Flower delivers it to a ClientApp."""

from __future__ import annotations

import time
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, Metadata, RecordDict

from embedding_core.adapter import Adapter, AdapterSide
from federation.wire import ContentKey


def train_message(record: dict[str, Any], *, dim: int = 384) -> Message:
    """A ``train`` message carrying the identity adapter of width ``dim`` and ``record``."""
    content = RecordDict(
        {
            ContentKey.ARRAYS.value: ArrayRecord(
                Adapter(dim, side=AdapterSide.QUERY, seed=0).state_dict()
            ),
            ContentKey.CONFIG.value: ConfigRecord(record),
        }
    )
    metadata = Metadata(
        run_id=1,
        message_id="train-1",
        src_node_id=1,
        dst_node_id=7,
        reply_to_message_id="",
        group_id="1",
        created_at=time.time(),
        ttl=600.0,
        message_type="train",
    )
    return Message(content, metadata=metadata)
