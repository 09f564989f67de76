"""Flower's object pulls retried after 20 ms, not 1 s: a message's content as it lands.

Flower 1.42 hands a message to its receiver before all of the message's objects (its
arrays and records) have reached the store the receiver pulls them from. A SuperNode
stores the message, then pulls its objects from the SuperLink; the SuperExec starts the
ClientApp process as soon as the message is stored; and that process's first pull of an
object not yet there waits ``PULL_INITIAL_BACKOFF`` (1 s) before it asks again, doubling
up to 10 s. ``benchmarks/bench_round_cost.py`` found a median 1.1 s of every ClientApp
process's start in that wait (1.35 s from the fork to the ClientApp's import).

:func:`shorten_pull_backoff` sets the defaults of Flower's ``pull_objects`` and
``pull_and_inflate_object_from_tree`` (one function object each, shared by every caller:
the SuperNode, the ClientApp, the coordinator's grid) to retry after 20 ms, doubling up
to 50 ms (with a 1 s cap a message that took 0.5 s to land was seen up to 0.3 s late).
The tries, the time limit and the errors stay Flower's.
"""

from __future__ import annotations

import logging

__all__ = ["BACKOFF_CAP_SECONDS", "INITIAL_BACKOFF_SECONDS", "shorten_pull_backoff"]

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.02
BACKOFF_CAP_SECONDS = 0.05


def shorten_pull_backoff(
    *, initial: float = INITIAL_BACKOFF_SECONDS, cap: float = BACKOFF_CAP_SECONDS
) -> bool:
    """Make Flower's object pulls retry after ``initial`` s, doubling up to ``cap`` s.

    Returns:
        Whether both functions were changed (False for a Flower whose pulls differ: they
        are left as they are, and a warning says so).
    """
    from flwr.supercore.inflatable import inflatable_utils

    functions = (
        inflatable_utils.pull_objects,
        inflatable_utils.pull_and_inflate_object_from_tree,
    )
    for function in functions:
        defaults = function.__kwdefaults__ or {}
        if "initial_backoff" not in defaults or "backoff_cap" not in defaults:
            logger.warning("flower: its object pulls changed; their backoff left as it is")
            return False
    for function in functions:
        kwdefaults = function.__kwdefaults__
        assert kwdefaults is not None
        kwdefaults["initial_backoff"] = initial
        kwdefaults["backoff_cap"] = max(cap, initial)
    return True
