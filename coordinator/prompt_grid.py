"""A Flower ``Grid`` that collects the nodes' replies as soon as they arrive.

Flower 1.42's deployment grid (``flwr.superlink.grid.http_grid``) waits 3 s between two
looks for the replies of ``send_and_receive``; a CKKS round sends three messages (train,
the endorsement and the decryption queries), so the coordinator sat idle for about 4.5 s
a round on average. :class:`PromptGrid` delegates everything to Flower's grid and only
replaces that loop: the same push, the same pulls and the same timeout, every
``poll_seconds`` (0.1 s: one small request to the SuperLink on the coordinator's host).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.proto.node_pb2 import NodeInfo
from flwr.serverapp import Grid
from flwr.supercore.run import Run

__all__ = ["POLL_SECONDS", "PromptGrid"]

POLL_SECONDS = 0.1


class PromptGrid(Grid):
    """Delegate to ``grid``; ``send_and_receive`` looks for replies every ``poll_seconds``."""

    def __init__(self, grid: Grid, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.grid = grid
        self.poll_seconds = poll_seconds

    def set_run(self, run: Run) -> None:
        """Delegate."""
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        """The wrapped grid's run."""
        return self.grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Delegate."""
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        """Delegate."""
        return self.grid.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        """Delegate."""
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Delegate."""
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Delegate."""
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages``, then pull their replies until all came or ``timeout`` passed."""
        waiting = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while waiting and (deadline is None or time.monotonic() < deadline):
            found = list(self.pull_messages(waiting))
            replies.extend(found)
            waiting -= {m.metadata.reply_to_message_id for m in found}
            if waiting:
                time.sleep(self.poll_seconds)
        return replies
