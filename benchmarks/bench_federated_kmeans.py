"""Federated k-means with and without differential privacy, against centralised k-means.

BANKING77 train (10,003 queries, 77 intents), encoded by the product's encoder through
the embedding cache, k = 77, NMI and ARI of the clustering against the intents:

- **centralised**: :func:`analytics.kmeans` on the pooled vectors (k-means++, ``--n-init``
  restarts), the reference.
- **split**: 3 nodes, non-IID by intent: for each intent, the node shares are drawn from
  Dirichlet(0.5, 0.5, 0.5) and the intent's records (shuffled) are cut accordingly;
  seeded per seed.
- **public initialisation** (no private record used): k-means on a public corpus,
  ``in_domain`` = the BANKING77 test split's texts (3,080 queries, labels unused,
  disjoint from the members' records) and ``out_of_domain`` = STS-B train sentences
  (general English). ``public_init_only`` scores those centroids with no round at all.
- **federated**: :func:`dp_training.dp_kmeans.federated_kmeans`, every round each node's
  per-centroid sums and counts (plus its noise share) summed, the coordinator's update;
  without DP, and with DP at epsilon ``--epsilons`` (delta 1e-5, unit one record,
  calibrated for the fellow member with t = 3 shares) for each round count in
  ``--rounds``. The released vector is (sums, w * counts) with w = 0.3, sensitivity
  sqrt(1 + w^2) = 1.044; at epsilon 4 and 8 two ablations: ``_no_debias`` (nodes assign
  without the coordinator's noise corrections) and ``_weight1`` (w = 1, sensitivity
  sqrt(2)). ``best_fixed_rounds`` picks, per epsilon, the round count
  with the best NMI averaged over the seeds (one choice for all seeds).

Each row is the mean over ``--seeds`` seeds (split, initialisation, noise and the
centralised restarts all seeded by the seed). Prints one JSON object.

    .venv/bin/python benchmarks/bench_federated_kmeans.py --data-dir ../shared/data \
        [--seeds 5] [--rounds 1 2 3 5 10] [--epsilons 1 4 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from analytics import assign, kmeans, load_labelled_texts
from dp_training.dp_kmeans import (
    DEFAULT_COUNT_WEIGHT,
    calibrate_dp_kmeans,
    public_initial_centroids,
)
from dp_training.federated_kmeans import federated_kmeans
from embedding_core.cache import EmbeddingCache
from embedding_core.data import resolve_dataset_dir
from embedding_core.encoder import Encoder
from fedembed.uses_demo import split_by_label

K = 77
NODES = 3
DELTA = 1e-5
DIRICHLET = 0.5
VARIANTS = {  # name suffix: (count weight, debiased assignment)
    "": (DEFAULT_COUNT_WEIGHT, True),
    "_no_debias": (DEFAULT_COUNT_WEIGHT, False),
    "_weight1": (1.0, True),
}
ABLATION_EPSILONS = (4.0, 8.0)


def _scores(truth: NDArray[np.int64], labels: NDArray[np.int64]) -> dict[str, float]:
    return {
        "nmi": float(normalized_mutual_info_score(truth, labels)),
        "ari": float(adjusted_rand_score(truth, labels)),
    }


def split_by_intent(truth: NDArray[np.int64], seed: int) -> list[NDArray[np.int64]]:
    """Record indices of each node: per intent, Dirichlet(0.5) shares (the main job's split)."""
    return split_by_label(truth, nodes=NODES, seed=seed, concentration=DIRICHLET)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.fmean(r[key] for r in rows), 4) for key in rows[0]}


def run(
    vectors: NDArray[np.float32],
    truth: NDArray[np.int64],
    publics: dict[str, NDArray[np.float32]],
    *,
    seeds: int,
    rounds_grid: list[int],
    epsilons: list[float],
    n_init: int,
) -> dict[str, Any]:
    rows: dict[str, list[dict[str, float]]] = {}

    def add(name: str, score: dict[str, float]) -> None:
        rows.setdefault(name, []).append(score)

    sizes: list[list[int]] = []
    for seed in range(seeds):
        central = kmeans(vectors, K, n_init=n_init, seed=seed, progress=False)
        add("centralised", _scores(truth, central.labels))
        nodes = split_by_intent(truth, seed)
        sizes.append([len(n) for n in nodes])
        node_vectors = [vectors[n] for n in nodes]
        for init_name, public in publics.items():
            initial = public_initial_centroids(public, K, seed=seed)
            add(f"{init_name}/public_init_only", _scores(truth, assign(vectors, initial)[0]))
            for rounds in rounds_grid:
                rng = np.random.default_rng([seed, rounds])
                plain = federated_kmeans(
                    node_vectors, initial, rounds=rounds, calibration=None, rng=rng
                )
                add(f"{init_name}/federated/r{rounds}", _scores(truth, plain.assign(vectors)))
                for epsilon in epsilons:
                    for variant, (weight, debias) in VARIANTS.items():
                        if variant and epsilon not in ABLATION_EPSILONS:
                            continue
                        calibration = calibrate_dp_kmeans(
                            epsilon=epsilon,
                            delta=DELTA,
                            rounds=rounds,
                            shares=NODES,
                            count_weight=weight,
                        )
                        noisy = federated_kmeans(
                            node_vectors,
                            initial,
                            rounds=rounds,
                            calibration=calibration,
                            rng=np.random.default_rng([seed, rounds, int(epsilon * 100)]),
                            debias=debias,
                        )
                        add(
                            f"{init_name}/dp_eps{epsilon:g}{variant}/r{rounds}",
                            {
                                **_scores(truth, noisy.assign(vectors)),
                                "kept_previous_last": float(noisy.kept_previous[-1]),
                            },
                        )
    means = {name: _mean(r) for name, r in rows.items()}
    centralised_nmi = means["centralised"]["nmi"]
    best: dict[str, Any] = {}
    for init_name in publics:
        methods = ["federated"] + [
            f"dp_eps{e:g}{v}" for e in epsilons for v in VARIANTS if not v or e in ABLATION_EPSILONS
        ]
        for method in methods:
            options = {r: means[f"{init_name}/{method}/r{r}"] for r in rounds_grid}
            chosen = max(options, key=lambda r: options[r]["nmi"])
            best[f"{init_name}/{method}"] = {
                "rounds": chosen,
                **options[chosen],
                "nmi_gap_to_centralised": round(centralised_nmi - options[chosen]["nmi"], 4),
            }
    return {"node_sizes": sizes, "mean": means, "best_fixed_rounds": best}


def _calibrations(rounds_grid: list[int], epsilons: list[float]) -> list[dict[str, Any]]:
    out = []
    for epsilon in epsilons:
        for rounds in rounds_grid:
            c = calibrate_dp_kmeans(epsilon=epsilon, delta=DELTA, rounds=rounds, shares=NODES)
            out.append(
                {
                    "epsilon": epsilon,
                    "rounds": rounds,
                    "sum_noise_std": round(c.sum_noise_std, 4),
                    "count_noise_std": round(c.count_noise_std, 4),
                    "noise_std_share": round(c.noise_std_share, 4),
                    "epsilon_coordinator": round(c.epsilon_for_observer(c.observer.COORDINATOR), 3),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    parser.add_argument("--n-init", type=int, default=4, help="centralised k-means restarts")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: the usual)")
    args = parser.parse_args()

    banking = resolve_dataset_dir(args.data_dir, "banking77", marker="train.csv")
    stsb = resolve_dataset_dir(args.data_dir, "stsb", marker="stsb-train.jsonl")
    records = load_labelled_texts(banking / "train.csv", label_column="category")
    names = sorted(set(records.require_labels()))
    truth = np.array([names.index(x) for x in records.require_labels()], dtype=np.int64)
    public_in = load_labelled_texts(banking / "test.csv").texts
    sentences: list[str] = []
    with (stsb / "stsb-train.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            sentences += [row["sentence1"], row["sentence2"]]
    public_out = list(dict.fromkeys(sentences))

    load_before = [round(x, 2) for x in os.getloadavg()]
    encoder = Encoder.load()
    cache = EmbeddingCache(Path(args.cache_dir) if args.cache_dir else None)
    started = time.perf_counter()
    vectors = cache.get_or_encode(encoder, records.texts, what="encode BANKING77 train")
    publics = {
        "in_domain": cache.get_or_encode(encoder, public_in, what="encode BANKING77 test"),
        "out_of_domain": cache.get_or_encode(encoder, public_out, what="encode STS-B train"),
    }
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        result = run(
            vectors,
            truth,
            publics,
            seeds=args.seeds,
            rounds_grid=args.rounds,
            epsilons=args.epsilons,
            n_init=args.n_init,
        )
    print(
        json.dumps(
            {
                "benchmark": "federated_kmeans_banking77",
                "records": len(records),
                "k": K,
                "nodes": NODES,
                "split": f"non-IID by intent, per-intent Dirichlet({DIRICHLET}) node shares",
                "delta": DELTA,
                "unit": "one record; sensitivity sqrt(1 + w^2) on (sums, w * counts), "
                f"w = {DEFAULT_COUNT_WEIGHT} (_weight1: w = 1, sqrt(2)); fellow-member view",
                "public_corpora": {name: len(v) for name, v in publics.items()},
                "seeds": args.seeds,
                "machine": f"{platform.machine()} {os.cpu_count()} cpus",
                "encoder": {"model_id": encoder.model_id, "backend": encoder.backend},
                "encode_s": round(encode_s, 2),
                "run_s": round(time.perf_counter() - started, 1),
                "load_before": load_before,
                "load_after": [round(x, 2) for x in os.getloadavg()],
                "calibration": _calibrations(args.rounds, args.epsilons),
                **result,
            }
        )
    )


if __name__ == "__main__":
    main()
