"""ReaderWriterLock: readers share, writers exclude, waiting writers are preferred."""

from __future__ import annotations

import threading
import time

from secure_index.index.rwlock import ReaderWriterLock


def test_readers_share_the_lock() -> None:
    # Prepare
    lock = ReaderWriterLock()
    inside = threading.Barrier(3, timeout=5)

    def reader() -> None:
        with lock.read():
            inside.wait()  # all three readers must be inside at once

    threads = [threading.Thread(target=reader) for _ in range(3)]
    # Execute
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
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
    for t in threads:
        t.join(timeout=30)
    # Assert
    assert state["violations"] == 0


def test_waiting_writer_blocks_new_readers() -> None:
    # Prepare
    lock = ReaderWriterLock()
    order: list[str] = []
    first_reader_in = threading.Event()
    release_first = threading.Event()

    def first_reader() -> None:
        with lock.read():
            first_reader_in.set()
            release_first.wait(5)
        order.append("reader-1 out")

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("reader-2")

    t1 = threading.Thread(target=first_reader)
    t1.start()
    first_reader_in.wait(5)
    tw = threading.Thread(target=writer)
    tw.start()
    time.sleep(0.1)  # the writer is now waiting
    t2 = threading.Thread(target=late_reader)
    t2.start()
    time.sleep(0.1)
    # Execute
    release_first.set()
    for t in (t1, tw, t2):
        t.join(timeout=5)
    # Assert: the late reader did not overtake the waiting writer
    assert order.index("writer") < order.index("reader-2")
