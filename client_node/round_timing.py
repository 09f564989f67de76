"""Where a node's seconds go, message by message: opt-in, written on the node only.

When the node's environment names a file in ``FEDEMBED_ROUND_TIMINGS`` (the round-cost
benchmark sets it), every ClientApp process appends one JSON line to it when it ends:
the message kind, the node's name, and wall-clock times (``time.time()``) of the phases
it went through (``process_start``, ``app_import_start``, ``app_imported``,
``call_start``, ``data_loaded``, ``vectors_ready``, ``train_start``, ``train_end``,
``handler_end``, ``call_end``, ``exit``). Without the variable nothing is recorded.
Like the node's other timings, these never leave the node (the file is the operator's).
"""

from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path

__all__ = ["TIMINGS_ENV", "mark", "process_start_time", "set_label"]

TIMINGS_ENV = "FEDEMBED_ROUND_TIMINGS"

_IMPORTED = time.time()  # the ClientApp module imports this first of fedembed's modules
_marks: dict[str, float] = {}
_labels: dict[str, str] = {}
_registered = False


def process_start_time() -> float | None:
    """Wall-clock time this process started (Linux ``/proc``), ``None`` where unknown."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _flush() -> None:
    target = os.environ.get(TIMINGS_ENV)
    if not target or not _marks:
        return
    record = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        **_labels,
        "app_import_start": _IMPORTED,
        **_marks,
        "exit": time.time(),
    }
    started = process_start_time()
    if started is not None:
        record["process_start"] = started
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def mark(phase: str) -> None:
    """Record that ``phase`` happened now (the first time only); no-op when not enabled."""
    global _registered
    if not os.environ.get(TIMINGS_ENV):
        return
    _marks.setdefault(phase, time.time())
    if not _registered:
        atexit.register(_flush)
        _registered = True


def set_label(key: str, value: str) -> None:
    """Attach a label (message kind, node name) to this process's record."""
    if os.environ.get(TIMINGS_ENV):
        _labels[key] = value
