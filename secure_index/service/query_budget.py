"""Per-key query budgets over a window, persisted so a restart does not refill them.

A rate limit (:mod:`secure_index.service.rate_limit`) bounds how fast a partner queries;
it does not bound how much it learns in total: at 600 queries a minute a partner sends
384 basis vectors in under a minute, and the texts of a least-squares probe in a few.
A budget bounds the total: each key may have ``query_budget`` queries *answered* per
``budget_window_s`` seconds (1000 a day by default), whatever its rate.

Algorithm: a fixed window per key (the "fixed window counter" of API quotas): a window
opens at the key's first answered query after the previous one closed and lasts
``budget_window_s`` seconds; each answered query spends one unit; a query that finds
the window spent is refused with the seconds until it closes (the ``Retry-After``).
Any span of ``budget_window_s`` seconds therefore sees at most twice the budget (the end
of one window and the start of the next), never more.

Persistence: one row per key (``key_id``, ``window_start``, ``spent``) in a small table
of the credentials SQLite file, written in a ``BEGIN IMMEDIATE`` transaction, so the
check and the spend are atomic across threads and processes and a restarted gateway
continues the window where it was. Wall-clock time (``time.time``) is used because
windows must survive restarts; a clock set back only makes the current window last
longer (its spent units stay). The table holds key ids, times and counts, never
queries.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from crypto.errors import KeyManagementError
from secure_index.service.credentials import BUSY_TIMEOUT_MS, CredentialStore

__all__ = ["BudgetCharge", "QueryBudget"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS query_budget (
    key_id TEXT PRIMARY KEY,
    window_start REAL NOT NULL,
    spent INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class BudgetCharge:
    """The outcome of asking to spend one query.

    Attributes:
        allowed: Whether the query may be answered (one unit was spent).
        spent: Units spent in the current window (this one included when allowed).
        budget: The key's budget per window.
        retry_after_s: Seconds until the window closes (0 when allowed).
    """

    allowed: bool
    spent: int
    budget: int
    retry_after_s: float


class QueryBudget:
    """Spend and refund answered queries of each key in the credentials SQLite file.

    Args:
        credentials: The credential store whose file holds the budget table.
        clock: Wall-clock seconds (``time.time``); tests pass a fake one.
    """

    def __init__(
        self, credentials: CredentialStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = credentials.path
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,  # guarded by self._lock
            )
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA synchronous = FULL")
            with self._write() as db:
                db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise KeyManagementError(
                f"{self.path} has no usable query budget table ({exc})",
                expected="the credentials SQLite file fedembed created",
                fix="restore it from a backup, or move it away and issue new keys",
            ) from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def spend(self, key_id: str, *, budget: int, window_s: float) -> BudgetCharge:
        """Spend one query of ``key_id`` if its window has any left (atomic, durable).

        Args:
            key_id: The key.
            budget: Its answered queries per window.
            window_s: Its window in seconds.
        """
        now = self._clock()
        with self._write() as db:
            row = db.execute(
                "SELECT window_start, spent FROM query_budget WHERE key_id = ?", (key_id,)
            ).fetchone()
            start, spent = (float(row[0]), int(row[1])) if row is not None else (now, 0)
            if now >= start + window_s:  # the window closed: a new one opens now
                start, spent = now, 0
            if spent >= budget:
                return BudgetCharge(False, spent, budget, max(0.0, start + window_s - now))
            db.execute(
                "INSERT INTO query_budget (key_id, window_start, spent) VALUES (?, ?, ?) "
                "ON CONFLICT(key_id) DO UPDATE SET "
                "window_start = excluded.window_start, spent = excluded.spent",
                (key_id, start, spent + 1),
            )
        return BudgetCharge(True, spent + 1, budget, 0.0)

    def refund(self, key_id: str) -> None:
        """Give back one unit spent on a query that was not answered after all."""
        with self._write() as db:
            db.execute(
                "UPDATE query_budget SET spent = spent - 1 WHERE key_id = ? AND spent > 0",
                (key_id,),
            )

    def spent(self, key_id: str, *, window_s: float) -> int:
        """Units ``key_id`` has spent in its current window (0 when it closed)."""
        with self._lock:
            row = self._db.execute(
                "SELECT window_start, spent FROM query_budget WHERE key_id = ?", (key_id,)
            ).fetchone()
        if row is None or self._clock() >= float(row[0]) + window_s:
            return 0
        return int(row[1])

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
