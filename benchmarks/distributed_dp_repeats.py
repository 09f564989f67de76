"""Repeat the demo's distributed-DP federation through Flower and print one JSON line per run.

Each run is ``fedembed.federated_demo.run_distributed_row``, the main job's own code
path: the real ServerApp and ClientApp on Flower's simulation engine, CKKS secure
aggregation with freshly provisioned kits, DP-SGD with noise shares and every node's
ledger (fresh per run). Fresh DP noise each run, so the spread of single runs shows.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/distributed_dp_repeats.py \\
        --members out/demo/members --data-dir ../shared/data --repeats 8 --epsilon 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from client_node.node_data import STATE_DIR
from embedding_core.adapter import AdapterKind
from fedembed.federated_demo import NODES, Recipe, run_distributed_row
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=Path, required=True, help="the demo's member split")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--shift", action="store_true", help="the release's recipe (shift adapter)")
    args = parser.parse_args()
    recipe = Recipe()
    if args.shift:
        recipe = dataclasses.replace(recipe, adapter_kind=AdapterKind.SHIFT.value, adapter_rank=0)
    scores = []
    with tempfile.TemporaryDirectory(prefix="ddp-repeats-") as scratch:
        for repeat in range(args.repeats):
            out = Path(scratch) / f"run{repeat}"
            out.mkdir()
            provision(out / "kits", node_ids=list(NODES))
            run_ckks_ceremony(out / "kits")  # the members' key ceremony
            members = {}
            for node in NODES:  # fresh members: their own ledgers start empty each repeat
                members[node] = out / "members" / node
                shutil.copytree(
                    args.members / node, members[node], ignore=shutil.ignore_patterns(STATE_DIR)
                )
            started = time.perf_counter()
            row = run_distributed_row(
                members,
                kits=out / "kits",
                out=out,
                data_dir=args.data_dir,
                recipe=recipe,
                epsilon=args.epsilon,
                budget=args.epsilon,
            )
            scores.append(float(row["ndcg@10"]))
            line = {
                "repeat": repeat,
                "epsilon_target": args.epsilon,
                "ndcg@10": row["ndcg@10"],
                "epsilon_per_node": row["epsilon_per_node"],
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps(line), flush=True)
            shutil.rmtree(out)
    summary = {"runs": len(scores), "mean_ndcg@10": statistics.fmean(scores)}
    if len(scores) > 1:
        summary["sd"] = statistics.stdev(scores)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
