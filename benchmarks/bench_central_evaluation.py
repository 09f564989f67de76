"""The coordinator's central evaluation set-up: a run's first evaluation vs a later run's.

Every federation run builds a :class:`~coordinator.central_evaluation.CentralEvaluator`,
which needs the base vectors of the evaluation corpus (SciFact: 5,183 documents and 300
test queries). The baseline is a run on a machine whose embedding cache is empty, which
encodes everything (what every run did before the vectors were cached); the candidate is
the next run on the same machine, which reads them from the cache. Pairs are
interleaved (cold, warm, cold, warm ...), each cold one on a fresh cache folder. Prints
one JSON object.

    .venv/bin/python benchmarks/bench_central_evaluation.py --data-dir ../shared/data \
        [--dataset scifact] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from coordinator.central_evaluation import CentralEvaluator


def _build(data_dir: Path, dataset: str, cache: Path) -> float:
    started = time.perf_counter()
    CentralEvaluator(
        data_dir=data_dir, dataset=dataset, kind="residual_linear", rank=0, cache_dir=cache
    )
    return time.perf_counter() - started


def main() -> None:
    """Run the interleaved pairs and print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="fedembed-bench-cache-") as folder:
            cold.append(_build(args.data_dir, args.dataset, Path(folder)))
            warm.append(_build(args.data_dir, args.dataset, Path(folder)))
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(
        json.dumps(
            {
                "benchmark": "central_evaluation_setup",
                "dataset": args.dataset,
                "baseline": "first run on the machine (empty embedding cache: encode all)",
                "candidate": "later run (base vectors from the embedding cache)",
                "repeats": args.repeats,
                "cold_s": [round(x, 2) for x in cold],
                "warm_s": [round(x, 2) for x in warm],
                "cold_median_s": round(cold_s, 2),
                "warm_median_s": round(warm_s, 2),
                "speedup": round(cold_s / warm_s, 1),
                "torch_threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
