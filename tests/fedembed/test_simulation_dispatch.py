"""The simulation engine's dispatch: every message handed over, in order, promptly looked for."""

from __future__ import annotations

import logging
import threading
from collections import deque
from queue import Queue
from typing import Any

import pytest
from flwr.server.superlink.fleet.vce import vce_api

from fedembed.simulation_dispatch import prompt_dispatch


class _LinkState:
    """The one link-state call the dispatch makes: ``get_message_ins(node_id, limit)``."""

    def __init__(self, messages: dict[int, list[str]]) -> None:
        self.pending = {node: deque(items) for node, items in messages.items()}
        self.lock = threading.Lock()

    def get_message_ins(self, *, node_id: int, limit: int) -> list[str]:
        with self.lock:
            queue = self.pending[node_id]
            return [queue.popleft() for _ in range(min(limit, len(queue)))]

    def add(self, node_id: int, message: str) -> None:
        with self.lock:
            self.pending[node_id].append(message)


@pytest.fixture
def flower_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's own dispatch back after the test, whatever the test replaced."""
    monkeypatch.setattr(vce_api, "add_messages_to_queue", vce_api.add_messages_to_queue)


def test_the_dispatch_is_replaced_once(flower_dispatch: None) -> None:
    flowers = vce_api.add_messages_to_queue

    assert prompt_dispatch() is True
    replaced = vce_api.add_messages_to_queue
    assert prompt_dispatch() is True  # a second call keeps the first replacement

    assert replaced is not flowers
    assert vce_api.add_messages_to_queue is replaced


def test_every_message_reaches_the_queue_in_order_and_the_thread_stops(
    flower_dispatch: None,
) -> None:
    # Prepare: two nodes, three messages for node 1 before the start, one added later.
    prompt_dispatch()
    state = _LinkState({1: ["a1", "a2", "a3"], 2: ["b1"]})
    queue: Queue[Any] = Queue()
    stop = threading.Event()
    thread = threading.Thread(
        target=vce_api.add_messages_to_queue, args=(state, queue, {1: 0, 2: 1}, stop)
    )

    # Execute
    thread.start()
    got = [queue.get(timeout=60) for _ in range(4)]
    state.add(2, "b2")
    got.append(queue.get(timeout=60))
    stop.set()
    thread.join(timeout=60)

    # Assert: one message per node a look, each node's in order, none lost or repeated.
    assert not thread.is_alive()
    assert [m for m in got if m.startswith("a")] == ["a1", "a2", "a3"]
    assert [m for m in got if m.startswith("b")] == ["b1", "b2"]
    assert queue.empty()


def test_a_flower_whose_dispatch_differs_is_left_as_it_is(
    flower_dispatch: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: a Flower whose dispatch takes other arguments.
    def other(state: Any, queue: Any, f_stop: Any) -> None:  # pragma: no cover - not run
        return None

    monkeypatch.setattr(vce_api, "add_messages_to_queue", other)

    # Execute
    with caplog.at_level(logging.WARNING):
        replaced = prompt_dispatch()

    # Assert
    assert replaced is False
    assert vce_api.add_messages_to_queue is other
    assert "0.1 s tick left as it is" in caplog.text
