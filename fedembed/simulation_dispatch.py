"""The simulation engine hands messages to virtual nodes within milliseconds, not 0.1 s.

Flower 1.42's simulation engine moves the ServerApp's messages to its virtual nodes in a
thread (``vce_api.add_messages_to_queue``) that looks at the link state, then sleeps
0.1 s. A message sent just after a look waits up to 0.1 s before any node starts on it,
so every message exchange of a round costs up to a tick more; a round of the
distributed-DP recipe (one full-batch step) is two or three such exchanges and little
else.

:func:`prompt_dispatch` replaces that thread's function with one that looks again after
``first`` seconds (2 ms) once it has handed a message over, doubling its sleep up to
``cap`` (20 ms) while none come. A look is one in-memory call per virtual node. What it
hands over and in what order stays Flower's: the same link-state call, one message per
node a look, the same queue.
"""

from __future__ import annotations

import inspect
import logging
import threading
from queue import Queue
from typing import Any

__all__ = ["CAP_SECONDS", "FIRST_SECONDS", "prompt_dispatch"]

logger = logging.getLogger(__name__)

FIRST_SECONDS = 0.002
CAP_SECONDS = 0.02
_PARAMETERS = ["state", "queue", "nodes_mapping", "f_stop"]


def prompt_dispatch(*, first: float = FIRST_SECONDS, cap: float = CAP_SECONDS) -> bool:
    """Make the simulation engine look for messages after ``first`` s, up to ``cap`` s.

    Returns:
        Whether Flower's dispatch was replaced (False for a Flower whose dispatch differs:
        it is left as it is, and a warning says so).
    """
    from flwr.server.superlink.fleet.vce import vce_api

    current = getattr(vce_api, "add_messages_to_queue", None)
    if current is None or list(inspect.signature(current).parameters) != _PARAMETERS:
        logger.warning("flower: its simulation dispatch changed; its 0.1 s tick left as it is")
        return False
    if getattr(current, "_fedembed_prompt", False):
        return True

    def add_messages_to_queue(
        state: Any, queue: Queue[Any], nodes_mapping: dict[int, int], f_stop: threading.Event
    ) -> None:
        wait = first
        while not f_stop.is_set():
            found = False
            for node_id in nodes_mapping:
                for message in state.get_message_ins(node_id=node_id, limit=1):
                    queue.put(message)
                    found = True
            wait = first if found else min(2 * wait, cap)
            f_stop.wait(wait)

    add_messages_to_queue._fedembed_prompt = True  # type: ignore[attr-defined]
    vce_api.add_messages_to_queue = add_messages_to_queue
    return True
