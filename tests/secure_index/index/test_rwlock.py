"""ReaderWriterLock: readers share, writers exclude, waiting writers are preferred."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from secure_index.index.rwlock import ReaderWriterLock

# How long a test waits for another thread before it calls the wait a failure: generous,
# so a loaded machine never trips it; only a deadlock does.
PATIENCE = 120.0


def _until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (polled: the lock's state has no event to wait on)."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        time.sleep(0.001)


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(PATIENCE)
        assert not t.is_alive(), f"{t.name} is stuck"


def test_readers_share_the_lock() -> None:
    # Prepare
    lock = ReaderWriterLock()
    inside = threading.Barrier(3, timeout=PATIENCE)

    def reader() -> None:
        with lock.read():
            inside.wait()  # all three readers must be inside at once

    threads = [threading.Thread(target=reader) for _ in range(3)]
    # Execute
    for t in threads:
        t.start()
    _join(threads)
    # Assert
    assert not inside.broken
    assert lock.readers == 0


def test_writer_excludes_readers_and_writers() -> None:
    # Prepare
    lock = ReaderWriterLock()
    state = {"writing": 0, "reading": 0, "violations": 0}
    guard = threading.Lock()

    def writer() -> None:
        for _ in range(200):
            with lock.write():
                with guard:
                    state["writing"] += 1
                    if state["writing"] > 1 or state["reading"]:
                        state["violations"] += 1
                with guard:
                    state["writing"] -= 1

    def reader() -> None:
        for _ in range(200):
            with lock.read():
                with guard:
                    state["reading"] += 1
                    if state["writing"]:
                        state["violations"] += 1
                with guard:
                    state["reading"] -= 1

    threads = [threading.Thread(target=f) for f in (writer, writer, reader, reader, reader)]
    # Execute
    for t in threads:
        t.start()
    _join(threads)
    # Assert
    assert state["violations"] == 0


def test_waiting_writer_blocks_new_readers() -> None:
    # Prepare: a reader holds the lock, a writer waits for it, then a second reader comes.
    lock = ReaderWriterLock()
    order: list[str] = []
    release_first = threading.Event()

    def first_reader() -> None:
        with lock.read():
            assert release_first.wait(PATIENCE)
        order.append("reader-1 out")

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("reader-2")

    threads = [threading.Thread(target=f) for f in (first_reader, writer, late_reader)]
    threads[0].start()
    _until(lambda: lock.readers == 1)
    threads[1].start()
    _until(lambda: lock.writers_waiting == 1)
    threads[2].start()
    _until(lambda: lock.readers_waiting == 1)
    # Execute
    release_first.set()
    _join(threads)
    # Assert: the late reader did not overtake the waiting writer
    assert order.index("writer") < order.index("reader-2")
    assert (lock.readers, lock.readers_waiting, lock.writers_waiting) == (0, 0, 0)
