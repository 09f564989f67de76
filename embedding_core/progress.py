"""Progress of a long step: a bar on a terminal, periodic log lines otherwise.

Every step that can take more than a few seconds (encodes, the coordinator's central
evaluation, audits, index builds, uploads) reports through :class:`Progress`, so a
person at a terminal sees a bar and a log file gets a line every ``interval_s``
seconds with the count, the rate and the time left::

    with Progress(len(texts), what="encode scifact corpus", unit="texts") as progress:
        for batch in batches:
            ...
            progress.advance(len(batch))

Lines never name texts, vectors or secrets: only the step, counts and times.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["PROGRESS_ENV", "Progress", "progress_mode", "track"]

logger = logging.getLogger(__name__)

PROGRESS_ENV = "FEDEMBED_PROGRESS"
"""``bar``, ``log`` or ``off``; unset: a bar on a terminal, log lines otherwise."""

DEFAULT_INTERVAL_S = 10.0
BAR_REFRESH_S = 0.1  # tqdm's own default; a shorter interval_s redraws more often

T = TypeVar("T")


def progress_mode(stream: TextIO | None = None) -> str:
    """How progress shows in this process: ``"bar"``, ``"log"`` or ``"off"``."""
    chosen = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if chosen in {"bar", "log", "off"}:
        return chosen
    target = stream if stream is not None else sys.stderr
    isatty = getattr(target, "isatty", None)
    return "bar" if callable(isatty) and isatty() else "log"


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, whole = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{whole:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Counts the work done on one step and shows it.

    Args:
        total: How many units the step has; ``None`` when unknown.
        what: The step, in the user's words (``"encode scifact corpus"``).
        unit: What is counted (``"texts"``, ``"rounds"``, ``"vectors"``).
        interval_s: Seconds between log lines when no terminal is attached (a bar
            redraws at least every 0.1 s, or every ``interval_s`` when shorter).
        mode: ``"bar"``, ``"log"`` or ``"off"``; default from :func:`progress_mode`.
        stream: Where the bar is drawn (default stderr).
    """

    def __init__(
        self,
        total: int | None,
        *,
        what: str,
        unit: str = "items",
        interval_s: float = DEFAULT_INTERVAL_S,
        mode: str | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.total = total
        self.what = what
        self.unit = unit
        self.done = 0
        self.mode = mode if mode is not None else progress_mode(stream)
        if self.mode not in {"bar", "log", "off"}:
            raise ValueError(f"progress mode must be bar, log or off, got {self.mode!r}")
        self._interval_s = interval_s
        self._started = time.monotonic()
        self._last_line = self._started
        self._closed = False
        self._bar: tqdm[Any] | None = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=what,
                unit=f" {unit}",
                file=stream or sys.stderr,
                leave=False,
                mininterval=min(interval_s, BAR_REFRESH_S),
            )
        elif self.mode == "log":
            size = "?" if total is None else str(total)
            logger.info("%s: started (%s %s)", what, size, unit)

    @property
    def elapsed_s(self) -> float:
        """Seconds since the step started."""
        return time.monotonic() - self._started

    def line(self) -> str:
        """The step's state as one line: count, share, rate and time left."""
        elapsed = self.elapsed_s
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            share = 100.0 * self.done / self.total
            left = (self.total - self.done) / rate if rate > 0 else float("nan")
            eta = _duration(left) if left == left else "?"
            return (
                f"{self.what}: {self.done}/{self.total} {self.unit} ({share:.0f}%), "
                f"{rate:.1f} {self.unit}/s, {_duration(elapsed)} elapsed, about {eta} left"
            )
        return (
            f"{self.what}: {self.done} {self.unit}, {rate:.1f} {self.unit}/s, "
            f"{_duration(elapsed)} elapsed"
        )

    def advance(self, count: int = 1) -> None:
        """Record ``count`` more units done."""
        if count < 0:
            raise ValueError(f"progress only moves forward, got {count}")
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self.mode == "log":
            now = time.monotonic()
            if now - self._last_line >= self._interval_s:
                self._last_line = now
                logger.info("%s", self.line())

    def close(self, *, stopped: bool = False) -> None:
        """End the step: close the bar, or log the final line (``stopped``: by an error)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        if self.mode != "off":
            logger.info(
                "%s: %s, %d %s in %s",
                self.what,
                "stopped" if stopped else "done",
                self.done,
                self.unit,
                _duration(self.elapsed_s),
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(stopped=exc_type is not None)


def track(
    items: Iterable[T],
    *,
    total: int | None = None,
    what: str,
    unit: str = "items",
    interval_s: float = DEFAULT_INTERVAL_S,
) -> Iterator[T]:
    """Yield ``items``, advancing a :class:`Progress` by one per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, what=what, unit=unit, interval_s=interval_s) as progress:
        for item in items:
            yield item
            progress.advance()
