"""Progress of a federation the demo runs: rounds done, read from the run folder.

A federation on the deployment engine runs in ``flwr run`` subprocesses and one on the
simulation engine inside Flower; both have the coordinator write the central evaluation
of every round to ``<out-dir>/central_metrics.json`` (a statistics task, its
``history.json``). :func:`watch_rounds` polls that
file in a thread and reports the rounds done through :class:`~embedding_core.progress.
Progress` (a bar on a terminal, a line every 10 s otherwise).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coordinator.run_folder import CENTRAL_METRICS_FILE, HISTORY_FILE
from embedding_core.progress import Progress

__all__ = ["rounds_done", "watch_rounds"]

POLL_S = 2.0


def rounds_done(out_dir: Path) -> int:
    """Rounds the run in ``out_dir`` has evaluated so far (round 0, the start, not counted).

    A statistics task (k-means, the classifier head) has no central evaluation: its rounds
    are the entries of the ``history.json`` it rewrites after each round.
    """
    central = _read(out_dir / CENTRAL_METRICS_FILE)
    if central is not None:
        rounds = central.get("rounds", {})
        return sum(1 for r in rounds if str(r).isdigit() and int(r) >= 1)
    history = _read(out_dir / HISTORY_FILE)
    rounds = history.get("rounds") if history is not None else None
    return len(rounds) if isinstance(rounds, list) else 0


def _read(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


@contextlib.contextmanager
def watch_rounds(out_dir: Path, *, total: int, what: str) -> Iterator[Progress]:
    """Report the rounds of the run writing to ``out_dir`` while the block runs."""
    stop = threading.Event()
    with Progress(total, what=what, unit="rounds") as progress:

        def poll() -> None:
            while not stop.wait(POLL_S):
                done = min(rounds_done(out_dir), total)
                if done > progress.done:
                    progress.advance(done - progress.done)

        watcher = threading.Thread(target=poll, name=f"rounds {what}", daemon=True)
        watcher.start()
        try:
            yield progress
        finally:
            stop.set()
            watcher.join()
            done = min(rounds_done(out_dir), total)
            if done > progress.done:
                progress.advance(done - progress.done)
