"""DP federated k-means on BANKING77's 77 intents through Flower, beside the in-process recipe.

The quality check of ``bench_federated_kmeans.py`` (BANKING77 train, 10,003 queries,
k = 77, NMI and ARI against the intents), run through the product's whole path: Flower's
simulation engine with the real ServerApp (``task = "kmeans"``) and ClientApp, three
members with provisioned kits after the CKKS key ceremony, each member encoding its own
``records.csv`` through its node embedding cache, the CKKS secure sum with each node's
noise share, the privacy ledgers. The split is that benchmark's (per intent, Dirichlet(0.5)
node shares, seed 0); the public start is k-means on BANKING77's test texts (labels
unused), as the coordinator seeds it from ``kmeans-public-corpus``.

In the same run, on the same vectors: centralised k-means (the reference) and the
in-process recipe (:func:`dp_training.federated_kmeans.federated_kmeans`) with the same
split, epsilon and rounds. The published centroids are scored with their noise
corrections (:func:`dp_training.dp_kmeans.assign_corrected`) on the pooled vectors.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_kmeans_flower.py \
        --data-dir ../shared/data [--epsilon 8] [--rounds 5]

Prints one JSON object. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_federated_kmeans import NODES, K, _scores, split_by_intent  # noqa: E402
from flower_members import machine, run_task, write_csv, write_members  # noqa: E402

from analytics import assign, kmeans, load_labelled_texts  # noqa: E402
from dp_training.dp_kmeans import (  # noqa: E402
    assign_corrected,
    calibrate_dp_kmeans,
    public_initial_centroids,
)
from dp_training.federated_kmeans import federated_kmeans  # noqa: E402
from embedding_core.cache import EmbeddingCache  # noqa: E402
from embedding_core.data import resolve_dataset_dir  # noqa: E402
from embedding_core.encoder import Encoder  # noqa: E402

DELTA = 1e-5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="the split's seed")
    args = parser.parse_args()

    banking = resolve_dataset_dir(args.data_dir, "banking77", marker="train.csv")
    records = load_labelled_texts(banking / "train.csv", label_column="category")
    names = sorted(set(records.require_labels()))
    truth = np.array([names.index(x) for x in records.require_labels()], dtype=np.int64)
    public_texts = load_labelled_texts(banking / "test.csv").texts
    load_before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="fedembed-bench-kmeans-flower-"))
    try:
        encoder = Encoder.load()
        cache = EmbeddingCache(work / "scoring-cache")
        vectors = cache.get_or_encode(encoder, records.texts, what="encode BANKING77 train")
        public = cache.get_or_encode(encoder, public_texts, what="encode BANKING77 test")

        # The members: the split's records in each folder; kits after the ceremony.
        nodes = split_by_intent(truth, args.seed)
        members, kits = write_members(
            work, ["text"], [[[records.texts[j]] for j in indices] for indices in nodes]
        )
        corpus = work / "public.csv"
        write_csv(corpus, ["text"], [[t] for t in public_texts])
        summary, flower_s = run_task(
            work,
            members,
            kits,
            epsilon=args.epsilon,
            rounds=args.rounds,
            task="kmeans",
            kmeans_k=K,
            kmeans_rounds=args.rounds,
            kmeans_epsilon=args.epsilon,
            kmeans_public_corpus=str(corpus),
            run_tag="bench-kmeans-flower",
        )
        published = json.loads((work / "out" / "kmeans_centroids.json").read_text())
        flower = _scores(
            truth,
            assign_corrected(
                vectors, np.asarray(published["centroids"]), np.asarray(published["corrections"])
            ),
        )

        # The same split, epsilon and rounds in process; and centralised k-means.
        initial = public_initial_centroids(public, K, seed=0)
        in_process = federated_kmeans(
            [vectors[n] for n in nodes],
            initial,
            rounds=args.rounds,
            calibration=calibrate_dp_kmeans(
                epsilon=args.epsilon, delta=DELTA, rounds=args.rounds, shares=NODES
            ),
            rng=np.random.default_rng([args.seed, args.rounds, int(args.epsilon * 100)]),
        )
        central = kmeans(vectors, K, n_init=4, seed=args.seed, progress=False)
        result: dict[str, Any] = {
            "benchmark": "federated k-means through Flower's simulation engine, BANKING77",
            "records": len(records),
            "k": K,
            "nodes": NODES,
            "node_sizes": [len(n) for n in nodes],
            "epsilon": args.epsilon,
            "delta": DELTA,
            "rounds": args.rounds,
            "noise_shares": NODES,
            "flower": {
                **flower,
                "seconds": round(flower_s, 1),
                "rounds_released": [r["released"] for r in summary["rounds"]],
                "nodes_per_round": [r["nodes"] for r in summary["rounds"]],
            },
            "in_process": _scores(truth, in_process.assign(vectors)),
            "public_init_only": _scores(truth, assign(vectors, initial)[0]),
            "centralised": _scores(truth, central.labels),
            "machine": machine(load_before),
        }
        result["flower_nmi_gap_to_centralised"] = round(
            result["centralised"]["nmi"] - flower["nmi"], 4
        )
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
