"""Flower ``Grid``s for strategy tests: connected nodes that receive nothing, or a loopback.

A strategy's ``configure_train`` asks the grid which nodes are connected and returns the
round's messages; the tests then hand the strategy the nodes' replies themselves (see
``replies.py``). :class:`ConnectedNodes` implements Flower's ``Grid`` interface for that
first step only: sending a message through it fails the test, because the strategies
under test must not send anything more in the cases that use it. :class:`LoopbackNodes`
delivers every message to an in-process ClientApp instead, so a whole federation runs
in the test's process.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore.run import Run

__all__ = ["ConnectedNodes", "LoopbackNodes", "start_round"]


class ConnectedNodes(Grid):
    """A grid on which ``node_ids`` are connected; nothing is ever delivered."""

    def __init__(self, node_ids: Sequence[int]) -> None:
        self.node_ids = list(node_ids)
        self.current_run = Run.create_empty(run_id=1)

    def set_run(self, run: Run) -> None:
        """Operate in ``run``."""
        self.current_run = run

    @property
    def run(self) -> Run:
        """The run this grid operates in."""
        return self.current_run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """A message for ``dst_node_id`` (never sent)."""
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        """The connected nodes."""
        return list(self.node_ids)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Refuse: the strategy under test was not expected to send anything."""
        raise AssertionError(f"unexpected send of {len(list(messages))} message(s)")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Refuse: nothing was sent, so there is nothing to pull."""
        raise AssertionError("unexpected pull: nothing was sent")

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Refuse: the strategy under test was not expected to send anything."""
        raise AssertionError(f"unexpected send of {len(list(messages))} message(s)")


class LoopbackNodes(ConnectedNodes):
    """Delivers each message to an in-process ClientApp (a copy, as a real link would).

    Each node id has its own node config and node state, as a SuperNode's would.
    """

    def __init__(self, app: ClientApp, node_configs: dict[int, dict[str, Any]]) -> None:
        super().__init__(list(node_configs))
        self.app = app
        self.contexts = {
            nid: Context(run_id=1, node_id=nid, node_config=cfg, state=RecordDict(), run_config={})
            for nid, cfg in node_configs.items()
        }

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Each node's reply, or an error reply where its ClientApp raised (as Flower's)."""
        replies = []
        for original in messages:
            msg = copy.deepcopy(original)
            msg.metadata.__dict__["_message_id"] = str(uuid.uuid4())
            try:
                replies.append(self.app(msg, self.contexts[msg.metadata.dst_node_id]))
            except Exception as exc:  # any failure is the node's error reply
                replies.append(Message(Error(code=2, reason=str(exc)), reply_to=msg))
        return replies


def start_round(
    strategy: Strategy, server_round: int, arrays: ArrayRecord, node_ids: Sequence[int]
) -> list[Message]:
    """Configure ``server_round`` from the global ``arrays``, as the ServerApp does."""
    return list(
        strategy.configure_train(server_round, arrays, ConfigRecord(), ConnectedNodes(node_ids))
    )
