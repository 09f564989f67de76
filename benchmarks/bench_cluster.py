"""Clustering the node's records: quality against BANKING77's 77 intents, and the cost.

On the 10,003 BANKING77 training queries (encoded once through the embedding cache):

- **k-means, k=77**: ours (:func:`analytics.kmeans`) and scikit-learn's ``KMeans`` on the
  same vectors with the same ``n_init``, interleaved over ``--repeats`` seeds; NMI and
  ARI against the intents, inertia and seconds per run, medians.
- **density**: HDBSCAN (:func:`analytics.density_clusters`, default settings): clusters
  found, noise share, NMI/ARI with noise counted as one group and on the clustered
  records only.
- **command cost**: wall time of ``fedembed node analyse cluster`` on the whole file with
  the embeddings cached (a fresh process each time: start-up, loading, clustering,
  descriptions, the map and its outputs), for ``--k 77``, for k chosen by silhouette
  over ``--k-range 2:30`` on a sample, and for ``--method density``.

Prints one JSON object.

    .venv/bin/python benchmarks/bench_cluster.py --data-dir ../shared/data \
        [--repeats 3] [--n-init 4] [--cache-dir DIR] [--skip-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # the analysis room may be newer than the installed tree
    sys.path.insert(0, str(REPO_ROOT))

from analytics import density_clusters, kmeans, load_labelled_texts  # noqa: E402
from client_node.analysis import RecordEncoder  # noqa: E402
from embedding_core.data import resolve_dataset_dir  # noqa: E402

INTENTS = 77


def _scores(truth: list[str], labels: NDArray[np.integer]) -> dict[str, float]:
    return {
        "nmi": round(float(normalized_mutual_info_score(truth, labels)), 4),
        "ari": round(float(adjusted_rand_score(truth, labels)), 4),
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 4) for key in runs[0]}


def bench_kmeans(
    vectors: NDArray[np.float32], truth: list[str], repeats: int, n_init: int
) -> dict[str, Any]:
    """Ours and scikit-learn's k-means at k=77, interleaved, one seed per repeat."""
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "sklearn": []}
    for seed in range(repeats):
        started = time.perf_counter()
        ours = kmeans(vectors, INTENTS, n_init=n_init, seed=seed, progress=False)
        ours_s = time.perf_counter() - started
        runs["ours"].append(
            {**_scores(truth, ours.labels), "inertia": ours.inertia, "seconds": ours_s}
        )
        started = time.perf_counter()
        theirs = KMeans(n_clusters=INTENTS, n_init=n_init, random_state=seed).fit(vectors)
        theirs_s = time.perf_counter() - started
        runs["sklearn"].append(
            {
                **_scores(truth, theirs.labels_),
                "inertia": float(theirs.inertia_),
                "seconds": theirs_s,
            }
        )
    medians = {name: _median(r) for name, r in runs.items()}
    return {
        "k": INTENTS,
        "n_init": n_init,
        "median": medians,
        "inertia_ratio_ours_to_sklearn": round(
            medians["ours"]["inertia"] / medians["sklearn"]["inertia"], 4
        ),
        "runs": {
            name: [{k: round(v, 4) for k, v in r.items()} for r in rs] for name, rs in runs.items()
        },
    }


def bench_density(vectors: NDArray[np.float32], truth: list[str]) -> dict[str, Any]:
    """HDBSCAN with the command's defaults."""
    started = time.perf_counter()
    found = density_clusters(vectors)
    seconds = time.perf_counter() - started
    kept = np.flatnonzero(found.labels >= 0)
    clustered = _scores([truth[i] for i in kept], found.labels[kept])
    return {
        "k": found.k,
        "noise_fraction": round(found.noise_fraction, 4),
        **_scores(truth, found.labels),
        "nmi_clustered": clustered["nmi"],
        "ari_clustered": clustered["ari"],
        "dimensions": found.dimensions,
        "seconds": round(seconds, 2),
    }


def time_command(train: Path, extra: list[str], cache_dir: str | None) -> dict[str, Any]:
    """Wall time of one ``fedembed node analyse cluster`` process, and its JSON line."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable, "-m", "fedembed", "-q", "node", "analyse", "cluster",
            "--input", str(train), "--label-column", "category", "--out", out, "--json",
            *extra,
        ]  # fmt: skip
        if cache_dir is not None:
            command += ["--cache-dir", cache_dir]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(extra)} failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    keep = ("k", "k_chosen_by", "silhouette", "nmi", "ari", "noise", "seconds")
    return {
        "args": " ".join(extra),
        "wall_s": round(seconds, 2),
        **{key: result.get(key) for key in keep},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeats", type=int, default=3, help="seeds per k-means implementation")
    parser.add_argument("--n-init", type=int, default=4)
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: the usual)")
    parser.add_argument("--skip-cli", action="store_true", help="leave out the command timings")
    args = parser.parse_args()

    folder = resolve_dataset_dir(args.data_dir, "banking77", marker="train.csv")
    train = folder / "train.csv"
    records = load_labelled_texts(train, label_column="category")
    truth = records.require_labels()
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    encoder = RecordEncoder(cache_dir=Path(args.cache_dir) if args.cache_dir else None)
    vectors = encoder.encode(records.texts, what="encode BANKING77 train")
    encode_s = time.perf_counter() - started

    result: dict[str, Any] = {
        "benchmark": "cluster_banking77",
        "records": len(records),
        "intents": len(set(truth)),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "encoder": encoder.description(),
        "encode_s": round(encode_s, 2),
        "load_before": load_before,
        "kmeans_k77": bench_kmeans(vectors, truth, args.repeats, args.n_init),
        "density": bench_density(vectors, truth),
    }
    if not args.skip_cli:
        result["command"] = [
            time_command(train, extra, args.cache_dir)
            for extra in (["--k", "77"], ["--k-range", "2:30"], ["--method", "density"])
        ]
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
