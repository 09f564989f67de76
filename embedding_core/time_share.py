"""A sampled check's share of a time budget: its sample sized to the machine it runs on.

Some checks cost seconds per item on one machine and a fraction of that on another: a
query scored under CKKS, a probe sent to a CKKS collection. The main job gives such a check
a :class:`TimeShare` instead of a fixed sample: items run in a seeded random order, and the
check asks :meth:`TimeShare.more` before each step whether the next items still fit. A
check always takes its ``floor`` items (the smallest sample it can report on), and reports
how many it took, so a faster machine gets a larger sample of the same draw.

Tests pass a fixed sample instead (no wall-clock limit that load can break), or a clock of
their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TimeShare"]


class TimeShare:
    """``seconds`` of work for a sampled check, at least ``floor`` items.

    The clock starts at the first :meth:`more` call (the first item), so set-up before it
    (encrypting a corpus, starting a server) is not charged to the share.

    Args:
        seconds: Time the check's items may take.
        floor: Items always taken, whatever they cost.
        clock: Seconds, monotonic (tests pass their own).

    Raises:
        ValueError: ``seconds`` is not positive or ``floor`` is below 1.
    """

    def __init__(
        self, seconds: float, *, floor: int = 1, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if not seconds > 0 or floor < 1:
            raise ValueError(
                f"a time share needs seconds > 0 and floor >= 1, got {seconds!r} and {floor!r}"
            )
        self.seconds, self.floor = float(seconds), int(floor)
        self._clock = clock
        self._started: float | None = None

    def more(self, done: int, step: int = 1) -> bool:
        """Whether to take ``step`` more items after ``done``.

        Yes while ``done`` is below the floor; after that, yes while the mean time per item
        so far says the next ``step`` items end within the share.
        """
        now = self._clock()
        if self._started is None:
            self._started = now
        if done < self.floor:
            return True
        elapsed = now - self._started
        return elapsed + step * elapsed / done <= self.seconds

    def __repr__(self) -> str:
        return f"TimeShare({self.seconds:g} s, floor={self.floor})"
