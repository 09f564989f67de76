"""The audit's progress plumbing: numbered step lines and counted loops.

:class:`AuditSteps` announces each stage (``audit [5/9] membership inference: DP recipe,
8 shadows + 4 targets``); :func:`counted` turns the attacks' ``progress(done, total)``
callbacks into an :class:`embedding_core.progress.Progress` (a bar on a terminal, a log
line every 10 s otherwise); :class:`CountedInverter` and :func:`counted_trainer` count
an inversion's targets and a membership game's models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from attacks.membership_game import Trainer
from attacks.optimisation_inversion import OptimisationInverter
from dp_training import InteractionSet
from embedding_core.adapter import Adapter
from embedding_core.progress import Progress as Meter

__all__ = ["AuditSteps", "CountedInverter", "Progress", "counted", "counted_trainer"]

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
"""Where the audit's step lines go (the CLI prints them)."""


class AuditSteps:
    """The audit's steps, announced numbered: ``audit [3/9] inversion and attribute ...``.

    Each line goes to the log and to ``progress`` (if any), after the seconds since the
    audit started. :meth:`step` starts the next step; calling the object (or
    :meth:`detail`) says something within the current one, so an :class:`AuditSteps` is
    also a :data:`Progress`.

    Args:
        total: How many steps the audit has (0: unknown, the lines show no total).
        progress: Called with each line (the CLI prints them).
    """

    def __init__(self, total: int = 0, progress: Progress | None = None) -> None:
        self.total, self.number = total, 0
        self._progress = progress
        self._started = time.perf_counter()

    @property
    def label(self) -> str:
        """``audit [3/9]`` (``audit [3]`` when the total is unknown)."""
        of = f"/{self.total}" if self.total else ""
        return f"audit [{self.number}{of}]"

    def step(self, title: str) -> None:
        """Start the next step, called ``title``."""
        self.number += 1
        self._say(f"{self.label} {title}")

    def detail(self, message: str) -> None:
        """Say ``message`` within the current step."""
        self._say(f"{self.label}   {message}")

    def __call__(self, message: str) -> None:
        """Say ``message`` within the current step (a :data:`Progress`)."""
        self.detail(message)

    def _say(self, line: str) -> None:
        logger.info("%s", line)
        if self._progress is not None:
            self._progress(f"[{time.perf_counter() - self._started:6.0f} s] {line}")


@contextmanager
def counted(what: str, unit: str, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback (the attacks' kind) that drives a :class:`Meter`.

    The meter opens now when ``total`` is given, else at the first call (which tells the
    total), and closes on exit.
    """
    meter: Meter | None = None if total is None else Meter(total, what=what, unit=unit)

    def report(done: int, total: int) -> None:
        nonlocal meter
        if meter is None:
            meter = Meter(total, what=what, unit=unit)
        meter.advance(max(done - meter.done, 0))

    try:
        yield report
    finally:
        if meter is not None:
            meter.close()


class CountedInverter:
    """An optimisation inverter whose :meth:`invert` advances a progress per target."""

    def __init__(self, inverter: OptimisationInverter, what: str) -> None:
        self.inverter, self.what = inverter, what

    def invert(self, vectors: np.ndarray) -> list[str]:
        """Invert ``vectors``, one progress step per target."""
        with counted(self.what, "targets", len(vectors)) as progress:
            return self.inverter.invert(vectors, progress=progress)


def counted_trainer(train: Trainer, meter: Meter) -> Trainer:
    """``train`` advancing ``meter`` by one per model trained."""

    def counting(data: InteractionSet, seed: int) -> Adapter:
        adapter = train(data, seed)
        meter.advance()
        return adapter

    return counting
