"""PromptGrid: every reply collected, the first look within milliseconds, the timeout kept.

A queue of nodes behind Flower's ``push_messages``/``pull_messages`` (:class:`SlowNodes`)
answers each message only after a number of pulls, as a SuperLink answers once a node
replied. PromptGrid must return every reply, look again quickly at first and then at
most every ``poll_seconds``, and stop at its timeout with the replies it has.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from flwr.app import ConfigRecord, Message, RecordDict

from coordinator.prompt_grid import PromptGrid
from tests.coordinator.grid import ConnectedNodes


class SlowNodes(ConnectedNodes):
    """Each pushed message is answered after ``pulls_needed`` pulls (never if None)."""

    def __init__(self, node_ids: list[int], pulls_needed: int | None) -> None:
        super().__init__(node_ids)
        self.pulls_needed = pulls_needed
        self.pending: dict[str, Message] = {}
        self.pull_times: list[float] = []

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message_id = str(uuid.uuid4())
            message.metadata.__dict__["_message_id"] = message_id
            self.pending[message_id] = message
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self.pull_times.append(time.monotonic())
        if self.pulls_needed is None or len(self.pull_times) < self.pulls_needed:
            return []
        wanted = [m for m in message_ids if m in self.pending]
        return [
            Message(RecordDict({"reply": ConfigRecord()}), reply_to=self.pending.pop(m))
            for m in wanted
        ]


def _messages(nodes: list[int]) -> list[Message]:
    return [
        Message(RecordDict({"q": ConfigRecord()}), dst_node_id=n, message_type="query")
        for n in nodes
    ]


def test_every_reply_is_collected_and_the_waits_grow_to_the_poll_interval() -> None:
    # Prepare: replies appear at the 8th pull.
    nodes = SlowNodes([1, 2, 3], pulls_needed=8)
    grid = PromptGrid(nodes, poll_seconds=0.04, first_poll_seconds=0.005)

    # Execute
    messages = _messages([1, 2, 3])
    replies = list(grid.send_and_receive(messages, timeout=60))

    # Assert: one reply to each message; the waits between pulls start short, double,
    # and then stay at the poll interval (lower bounds only: sleeps never end early).
    assert sorted(r.metadata.reply_to_message_id for r in replies) == sorted(
        m.metadata.message_id for m in messages
    )
    assert len(nodes.pull_times) == 8
    gaps = [b - a for a, b in zip(nodes.pull_times, nodes.pull_times[1:], strict=False)]
    assert gaps[0] >= 0.005
    assert all(g >= 0.04 for g in gaps[4:])  # 5, 10, 20, 40, then 40 ms waits


def test_the_timeout_returns_what_came() -> None:
    # Prepare: nobody ever answers.
    nodes = SlowNodes([1], pulls_needed=None)
    grid = PromptGrid(nodes, poll_seconds=0.02)

    # Execute
    replies = list(grid.send_and_receive(_messages([1]), timeout=0.2))

    # Assert: nothing came, and it stopped looking.
    assert replies == []
    assert len(nodes.pull_times) >= 2
