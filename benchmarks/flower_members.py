"""Three members on Flower's simulation engine, for the task benchmarks through Flower.

``bench_kmeans_flower.py`` and ``bench_classifier_flower.py`` run a ``task`` of the
product's ServerApp over three members: :func:`write_members` writes each member's
``records.csv`` and provisions the kits with the members' CKKS key ceremony;
:func:`run_task` runs the task's rounds with the CKKS secure sum and three noise shares
(no central evaluation) and returns the run summary and its seconds.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedding_core.encoder import DEFAULT_ENCODER_BACKEND
from fedembed.uses_demo import run_statistics_task, write_csv
from fedembed.uses_demo import write_members as write_member_folders
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision

__all__ = ["NODES", "machine", "run_task", "write_csv", "write_members"]

NODES = 3


def write_members(
    work: Path, header: Sequence[str], rows_per_node: Sequence[Sequence[Sequence[str]]]
) -> tuple[Path, Path]:
    """``work/members/node-<i>/records.csv`` and the kits after the ceremony; both folders."""
    members, kits = work / "members", work / "kits"
    names = list(write_member_folders(members, header, rows_per_node))
    provision(kits, node_ids=names)
    run_ckks_ceremony(kits, key_holder=names[0])
    return members, kits


def run_task(
    work: Path, members: Path, kits: Path, *, epsilon: float, rounds: int, **fields: Any
) -> tuple[dict[str, Any], float]:
    """Run ``fields`` (the task and its keys) over the members; the summary and seconds."""
    started = time.perf_counter()
    summary = run_statistics_task(
        {folder.name: folder for folder in sorted(members.iterdir()) if folder.is_dir()},
        kits=kits,
        out_dir=work / "out",
        budget=2 * epsilon,
        total_rounds=rounds,
        encoder_backend=DEFAULT_ENCODER_BACKEND,
        **fields,
    )
    return summary, time.perf_counter() - started


def machine(load_before: list[float]) -> dict[str, Any]:
    """The machine and its load before and now."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
