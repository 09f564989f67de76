"""Progress of a federation the demo runs: rounds done, read from the run folder.

A federation on the deployment engine runs in ``flwr run`` subprocesses and one on the
simulation engine inside Flower; both have the coordinator write the central evaluation
of every round to ``<out-dir>/central_metrics.json``. :func:`watch_rounds` polls that
file in a thread and reports the rounds done through :class:`~embedding_core.progress.
Progress` (a bar on a terminal, a line every 10 s otherwise).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from coordinator.run_folder import CENTRAL_METRICS_FILE
from embedding_core.progress import Progress

__all__ = ["rounds_done", "watch_rounds"]

POLL_S = 2.0


def rounds_done(out_dir: Path) -> int:
    """Rounds the run in ``out_dir`` has evaluated so far (round 0, the start, not counted)."""
    try:
        document = json.loads((out_dir / CENTRAL_METRICS_FILE).read_text())
    except (OSError, ValueError):
        return 0
    rounds = document.get("rounds", {}) if isinstance(document, dict) else {}
    return sum(1 for r in rounds if str(r).isdigit() and int(r) >= 1)


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
