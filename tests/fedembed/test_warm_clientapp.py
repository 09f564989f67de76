"""The warm SuperExec beside each SuperNode serves a CKKS federation's rounds, then stops."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.fedembed.conftest import NODES, Consortium


def _warm_superexecs(pgid: int) -> set[int]:
    """Pids of ``deployment.warm_superexec`` processes in process group ``pgid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            if os.getpgid(int(entry.name)) == pgid and b"deployment.warm_superexec" in command:
                found.add(int(entry.name))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return found


@pytest.mark.slow  # a two-round CKKS federation on three SuperNodes: minutes on 2 cores
def test_each_message_runs_in_a_fork_of_the_warm_superexec(
    consortium: Consortium, tmp_path: Path
) -> None:
    # Prepare: nodes that record where each ClientApp process came from.
    timings = tmp_path / "timings.jsonl"
    consortium.loopback.env["FEDEMBED_ROUND_TIMINGS"] = str(timings)
    consortium.start_fresh_nodes(max_epsilon=8.0)
    groups = {name: node.process.pid for name, node in consortium.nodes.items()}
    superexecs: dict[str, set[int]] = {name: set() for name in NODES}
    while not all(superexecs.values()):  # pytest-timeout bounds the start-up
        superexecs = {name: _warm_superexecs(pgid) for name, pgid in groups.items()}
        time.sleep(0.5)

    # Execute
    summary = consortium.loopback.run(
        {
            "num-server-rounds": 2,
            "aggregation": "ckks",
            "adapter-kind": "shift",
            "eval-dataset": "none",
            "min-nodes": 3,
            "batch-size": 32,
            "learning-rate": 0.01,
            "target-epsilon": 8.0,
            "update-clip-norm": 5.0,
        },
        out_dir=tmp_path / "run",
    )
    records = [json.loads(line) for line in timings.read_text().splitlines()]
    consortium.loopback.stop_nodes()

    # Assert: two rounds, every message of every node forked by its node's SuperExec,
    # and nothing left running after the nodes stopped.
    assert summary["refusals"] == []
    for name in NODES:
        mine = [r for r in records if r.get("node") == name]
        assert [r["kind"] for r in mine].count("train") == 2
        assert {r["ppid"] for r in mine} <= superexecs[name]
    assert {r["kind"] for r in records} == {"train", "endorse", "decrypt"}
    while any(_warm_superexecs(pgid) for pgid in groups.values()):
        time.sleep(0.2)
