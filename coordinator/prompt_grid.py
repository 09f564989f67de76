"""A Flower ``Grid`` that collects the nodes' replies as soon as they arrive.

Flower 1.42's deployment grid (``flwr.superlink.grid.http_grid``) waits 3 s between two
looks for the replies of ``send_and_receive``; a CKKS round sends two or three messages
(train, then the decryption query, after an endorsement query where the round's set was
not announced), so the coordinator sat idle for about 4.5 s a round on average.
:class:`PromptGrid` delegates everything to Flower's grid and only replaces that loop:
the same push, the same pulls and the same timeout. It looks again after
``first_poll_seconds`` (5 ms), then waits twice as long each time up to
``poll_seconds`` (0.1 s): a reply that comes at once (a node's decryption) is collected
within milliseconds, and a long wait (local training) costs one small request to the
SuperLink on the coordinator's host every 0.1 s, as before.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid

from coordinator.delegating_grid import DelegatingGrid

__all__ = ["FIRST_POLL_SECONDS", "POLL_SECONDS", "PromptGrid"]

POLL_SECONDS = 0.1
FIRST_POLL_SECONDS = 0.005


class PromptGrid(DelegatingGrid):
    """Delegate to ``grid``; ``send_and_receive`` looks for replies at growing intervals.

    The first look comes ``first_poll_seconds`` after the push; each wait doubles, up to
    ``poll_seconds``.
    """

    def __init__(
        self,
        grid: Grid,
        *,
        poll_seconds: float = POLL_SECONDS,
        first_poll_seconds: float = FIRST_POLL_SECONDS,
    ) -> None:
        super().__init__(grid)
        self.poll_seconds = poll_seconds
        self.first_poll_seconds = min(first_poll_seconds, poll_seconds)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages``, then pull their replies until all came or ``timeout`` passed."""
        waiting = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        wait = self.first_poll_seconds
        while waiting and (deadline is None or time.monotonic() < deadline):
            found = list(self.pull_messages(waiting))
            replies.extend(found)
            waiting -= {m.metadata.reply_to_message_id for m in found}
            if waiting:
                time.sleep(wait)
                wait = min(2 * wait, self.poll_seconds)
        return replies
