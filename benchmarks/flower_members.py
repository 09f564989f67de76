"""Three members on Flower's simulation engine, for the task benchmarks through Flower.

``bench_kmeans_flower.py`` and ``bench_classifier_flower.py`` run a ``task`` of the
product's ServerApp over three members: :func:`write_members` writes each member's
``records.csv`` and provisions the kits with the members' CKKS key ceremony;
:func:`run_task` runs the task's rounds with the CKKS secure sum and three noise shares
(no central evaluation) and returns the run summary and its seconds.
"""

from __future__ import annotations

import csv
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedembed.simulation import run_simulated_federation
from federation.node_privacy import NodePrivacy
from federation.run_config import FederationConfig
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision

__all__ = ["NODES", "machine", "run_task", "write_csv", "write_members"]

NODES = 3


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A CSV file with ``header`` and ``rows`` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_members(
    work: Path, header: Sequence[str], rows_per_node: Sequence[Sequence[Sequence[str]]]
) -> tuple[Path, Path]:
    """``work/members/node-<i>/records.csv`` and the kits after the ceremony; both folders."""
    members, kits = work / "members", work / "kits"
    names = [f"node-{i}" for i in range(len(rows_per_node))]
    for name, rows in zip(names, rows_per_node, strict=True):
        write_csv(members / name / "records.csv", header, rows)
    provision(kits, node_ids=names)
    run_ckks_ceremony(kits, key_holder=names[0])
    return members, kits


def run_task(
    work: Path, members: Path, kits: Path, *, epsilon: float, **fields: Any
) -> tuple[dict[str, Any], float]:
    """Run ``fields`` (the task and its keys) over the members; the summary and seconds."""
    config = FederationConfig(
        aggregation="ckks",
        coordinator_kit=str(kits / "coordinator"),
        dp_noise_shares=NODES,
        min_nodes=NODES,
        eval_dataset="none",
        round_timeout=1800.0,
        out_dir=str(work / "out"),
        **fields,
    )
    started = time.perf_counter()
    summary = run_simulated_federation(
        config,
        partition_root=members,
        num_nodes=NODES,
        kit_root=kits,
        node_privacy=NodePrivacy(max_epsilon=2 * epsilon),
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
