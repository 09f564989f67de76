"""Flower's object pulls retry after 20 ms (not 1 s) once ``shorten_pull_backoff`` ran.

The same function objects serve every caller, so the test changes their defaults and
puts Flower's back afterwards. A pull whose object is not there at first is retried and
returns it; the retry waited the shortened backoff (measured by the wait Flower asks
for, not by a clock).
"""

from __future__ import annotations

import threading

import pytest
from flwr.supercore.inflatable import inflatable_utils
from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError

from federation.flower_pulls import INITIAL_BACKOFF_SECONDS, shorten_pull_backoff

FUNCTIONS = (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree)


@pytest.fixture
def flower_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's own defaults restored after the test."""
    for function in FUNCTIONS:
        assert function.__kwdefaults__ is not None
        for key in ("initial_backoff", "backoff_cap"):
            monkeypatch.setitem(function.__kwdefaults__, key, function.__kwdefaults__[key])


@pytest.mark.usefixtures("flower_defaults")
def test_a_missing_object_is_asked_again_after_the_short_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: the object arrives after the first try; record the waits Flower asks for.
    waits: list[float] = []
    real_wait = threading.Event.wait

    def recording_wait(self: threading.Event, timeout: float | None = None) -> bool:
        if timeout is not None:
            waits.append(timeout)
        return real_wait(self, 0)

    monkeypatch.setattr(threading.Event, "wait", recording_wait)
    tries: list[str] = []

    def pull(object_id: str) -> bytes:
        tries.append(object_id)
        if len(tries) == 1:
            raise ObjectUnavailableError(object_id)
        return b"content"

    # Execute
    changed = shorten_pull_backoff()
    contents = inflatable_utils.pull_objects(["a"], pull)

    # Assert: both functions changed; one retry, after about 20 ms (Flower adds +-20%).
    assert changed
    for function in FUNCTIONS:
        assert function.__kwdefaults__ is not None
        assert function.__kwdefaults__["initial_backoff"] == INITIAL_BACKOFF_SECONDS
    assert contents == {"a": b"content"}
    assert tries == ["a", "a"]
    retry_waits = [w for w in waits if w < 5]
    assert retry_waits
    assert all(
        0.8 * INITIAL_BACKOFF_SECONDS <= w <= 1.2 * INITIAL_BACKOFF_SECONDS for w in retry_waits[:1]
    )
