"""A writer-preferring reader-writer lock.

hnswlib allows concurrent ``knn_query`` calls but not queries concurrent with
``add_items``/``mark_deleted``/``resize_index`` (nmslib/hnswlib#401, #455): queries take
the read side, every mutation and snapshot serialisation the write side. Writers are
preferred so a steady stream of queries cannot starve inserts. The guards are plain
objects (no generator per use): the read side sits on every query's hot path.
"""

from __future__ import annotations

import threading

__all__ = ["ReaderWriterLock"]


class _ReadGuard:
    __slots__ = ("_lock",)

    def __init__(self, lock: ReaderWriterLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire_read()

    def __exit__(self, *exc: object) -> None:
        self._lock.release_read()


class _WriteGuard:
    __slots__ = ("_lock",)

    def __init__(self, lock: ReaderWriterLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire_write()

    def __exit__(self, *exc: object) -> None:
        self._lock.release_write()


class ReaderWriterLock:
    """Many readers or one writer; a waiting writer blocks new readers."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # the condition's lock: the fast paths take it directly
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._read_guard = _ReadGuard(self)
        self._write_guard = _WriteGuard(self)

    def read(self) -> _ReadGuard:
        """``with lock.read():`` holds the lock shared for the block."""
        return self._read_guard

    def write(self) -> _WriteGuard:
        """``with lock.write():`` holds the lock exclusively for the block."""
        return self._write_guard

    def acquire_read(self) -> None:
        """Take the shared side (prefer ``with lock.read()``)."""
        with self._mutex:
            if self._writer or self._writers_waiting:
                self._readers_waiting += 1
                try:
                    while self._writer or self._writers_waiting:
                        self._cond.wait()
                finally:
                    self._readers_waiting -= 1
            self._readers += 1

    def release_read(self) -> None:
        """Give the shared side back."""
        with self._mutex:
            self._readers -= 1
            if self._readers == 0 and self._writers_waiting:  # only writers wait on readers
                self._cond.notify_all()

    def acquire_write(self) -> None:
        """Take the exclusive side (prefer ``with lock.write()``)."""
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True

    def release_write(self) -> None:
        """Give the exclusive side back."""
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    @property
    def readers(self) -> int:
        """How many readers hold the lock now (for tests and metrics)."""
        with self._cond:
            return self._readers

    @property
    def readers_waiting(self) -> int:
        """How many readers wait for the lock now (for tests and metrics)."""
        with self._cond:
            return self._readers_waiting

    @property
    def writers_waiting(self) -> int:
        """How many writers wait for the lock now (for tests and metrics)."""
        with self._cond:
            return self._writers_waiting
