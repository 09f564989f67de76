"""The main job's steps: a line when each starts, its wall seconds, a table at the end.

``fedembed demo`` runs a planned list of long steps (the reproduction, the SciFact
encode, each federation row, the release, the index, each audit stage). :class:`DemoSteps`
prints ``[3/9] federation: distributed DP eps=8 (100 rounds)`` when a step starts,
records its wall seconds under its key (``results.json``'s ``"timings"``) and prints the
table of every step when the job ends. The plan may grow while the job runs (the audit's
stages are known only once it runs): the step count follows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["DemoSteps", "Step", "load_average"]

logger = logging.getLogger(__name__)


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (``None`` where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - platforms without getloadavg
        return None


@dataclass
class Step:
    """One planned step: its key in ``timings``, its label and, once run, its seconds."""

    key: str
    label: str
    seconds: float | None = None


@dataclass
class DemoSteps:
    """The main job's plan and clock.

    Args:
        echo: Prints one line (the CLI passes ``typer.echo``).
    """

    echo: Callable[[str], None]
    steps: list[Step] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def plan(self, key: str, label: str) -> None:
        """Add a step to the plan (before it runs), so the count is known ahead."""
        if any(s.key == key for s in self.steps):
            raise ValueError(f"step {key!r} is planned twice")
        self.steps.append(Step(key, label))

    def _index(self, key: str) -> int:
        for n, step in enumerate(self.steps):
            if step.key == key:
                return n
        raise KeyError(f"step {key!r} was not planned")

    @contextlib.contextmanager
    def run(self, key: str, label: str | None = None) -> Iterator[Step]:
        """Time the planned step ``key``; an unplanned key is appended to the plan."""
        if not any(s.key == key for s in self.steps):
            self.plan(key, label or key)
        step = self.steps[self._index(key)]
        if label is not None:
            step.label = label
        number, total = self._index(key) + 1, len(self.steps)
        self.echo(f"[{number}/{total}] {step.label}")
        logger.info("step %d/%d started: %s", number, total, step.label)
        began = time.perf_counter()
        try:
            yield step
        finally:  # numbered as announced (stages recorded within it join the table only)
            step.seconds = round(time.perf_counter() - began, 1)
            logger.info("step %d/%d done in %.1f s: %s", number, total,
                        step.seconds, step.label)  # fmt: skip

    def record(self, key: str, label: str, seconds: float) -> None:
        """Record a step timed elsewhere (an audit stage), without a start line."""
        if not any(s.key == key for s in self.steps):
            self.plan(key, label)
        step = self.steps[self._index(key)]
        step.seconds = round((step.seconds or 0.0) + seconds, 1)  # a stage met twice adds up

    def skip(self, key: str) -> None:
        """Drop a planned step that will not run."""
        self.steps = [s for s in self.steps if s.key != key]

    @property
    def total_s(self) -> float:
        """Seconds since the job started."""
        return round(time.perf_counter() - self.started, 1)

    def timings(self) -> dict[str, float]:
        """``{key: seconds}`` of every step that ran, in plan order, plus ``total``."""
        done = {s.key: s.seconds for s in self.steps if s.seconds is not None}
        return {**done, "total": self.total_s}

    def table(self) -> list[str]:
        """The lines of the end-of-job table: each step's seconds and the total."""
        width = max([len(s.label) for s in self.steps] + [24])
        lines = [f"{'step':<{width}}{'seconds':>10}"]
        for step in self.steps:
            seconds = "-" if step.seconds is None else f"{step.seconds:.1f}"
            lines.append(f"{step.label:<{width}}{seconds:>10}")
        lines.append(f"{'total (wall)':<{width}}{self.total_s:>10.1f}")
        return lines
