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

from flwr.app import Message
from flwr.serverapp import Grid

from coordinator.delegating_grid import DelegatingGrid

__all__ = ["POLL_SECONDS", "PromptGrid"]

POLL_SECONDS = 0.1


class PromptGrid(DelegatingGrid):
    """Delegate to ``grid``; ``send_and_receive`` looks for replies every ``poll_seconds``."""

    def __init__(self, grid: Grid, *, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__(grid)
        self.poll_seconds = poll_seconds

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
