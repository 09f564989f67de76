"""A node's reply to a train message, as the coordinator's strategies receive it."""

from __future__ import annotations

from flwr.app import Message, Metadata, RecordDict


def train_reply(content: RecordDict, node: int) -> Message:
    """``content`` as the reply of node ``node`` to round 1's train message."""
    metadata = Metadata(
        run_id=1,
        message_id=f"m{node}",
        src_node_id=node,
        dst_node_id=0,
        reply_to_message_id="x",
        group_id="1",
        created_at=0.0,
        ttl=60.0,
        message_type="train",
    )
    return Message(content, metadata=metadata)
