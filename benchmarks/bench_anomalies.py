"""BANKING77 out-of-scope detection with the node's anomaly detectors, and the command's cost.

Ten of the 77 intents (a seeded choice, listed in the output) are held out as unknown:
the normal set is the train records of the other 67, the new items are all 3,080 test
records, those of the held-out intents being the anomalies. For each detector (k-NN mean
cosine distance; Mahalanobis with one mean per intent, Lee et al. 2018; Mahalanobis with
one mean for the whole set; relative Mahalanobis, Ren et al. 2021) the AUROC, and the
false-positive and detection rates the threshold for ``--target-fpr`` reached on the
test records; scikit-learn's AUROC of the same scores and its
``LocalOutlierFactor(novelty=True)`` are printed beside them as references. Then the
wall time of ``fedembed node analyse anomalies`` (a subprocess, as a user runs it) on
the 10,003 train records as the normal set and the test records as input
(``--label-column category``), embeddings cached, each detector in turn, interleaved
repeats, medians.

    .venv/bin/python benchmarks/bench_anomalies.py --data-dir ../shared/data \
        [--held-out 10] [--seed 0] [--k 10] [--target-fpr 0.05] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from client_node.analysis.anomalies import fit_anomaly_model, score_records
from client_node.analysis.record_vectors import RecordEncoder
from embedding_core.data import resolve_dataset_dir
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, ENCODER_BACKENDS

REPO = Path(__file__).resolve().parents[1]


def _read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def _detection(args: argparse.Namespace, encoder: RecordEncoder, folder: Path) -> dict[str, Any]:
    train_texts, train_labels = _read(folder / "train.csv")
    test_texts, test_labels = _read(folder / "test.csv")
    intents = sorted(set(train_labels))
    rng = np.random.default_rng(args.seed)
    held_out = sorted(str(i) for i in rng.choice(intents, size=args.held_out, replace=False))
    started = time.perf_counter()
    train_vectors = encoder.encode(train_texts, what="encode banking77 train")
    test_vectors = encoder.encode(test_texts, what="encode banking77 test")
    encode_s = time.perf_counter() - started
    keep = [i for i, label in enumerate(train_labels) if label not in held_out]
    normal = train_vectors[keep]
    normal_labels = [train_labels[i] for i in keep]
    truth = np.array([label in held_out for label in test_labels])
    out: dict[str, Any] = {
        "held_out_intents": held_out,
        "normal_records": len(keep),
        "test_records": len(test_texts),
        "anomalies": int(truth.sum()),
        "encode_s_first_call": round(encode_s, 2),
        "detectors": {},
    }
    variants = [
        ("knn", "knn", None),
        ("mahalanobis_per_intent", "mahalanobis", normal_labels),
        ("mahalanobis_one_class", "mahalanobis", None),
        ("relative_mahalanobis", "relative-mahalanobis", normal_labels),
    ]
    for name, detector, labels in variants:
        started = time.perf_counter()
        model = fit_anomaly_model(
            normal,
            [str(i) for i in keep],
            labels=labels,
            detector=detector,
            k=args.k,
            target_fpr=args.target_fpr,
            seed=args.seed,
        )
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        report = score_records(
            model, test_vectors, [str(i) for i in range(len(test_texts))], is_anomaly=list(truth)
        )
        score_s = time.perf_counter() - started
        result = report.result
        out["detectors"][name] = {
            "auroc": round(result["auroc"], 4),
            "auroc_sklearn": round(float(roc_auc_score(truth, report.scores)), 4),
            "fpr_at_threshold": round(result["fpr_at_threshold"], 4),
            "detection_rate": round(result["detection_rate"], 4),
            "flagged": result["flagged"],
            "threshold": round(result["threshold"], 6),
            "calibration": result["calibration"],
            "fit_and_calibrate_s": round(fit_s, 2),
            "score_s": round(score_s, 3),
        }
    started = time.perf_counter()
    lof = LocalOutlierFactor(n_neighbors=20, metric="cosine", novelty=True).fit(normal)
    lof_scores = -lof.score_samples(test_vectors)
    out["reference_sklearn_lof_auroc"] = round(float(roc_auc_score(truth, lof_scores)), 4)
    out["reference_sklearn_lof_s"] = round(time.perf_counter() - started, 2)
    return out


def _command_times(
    args: argparse.Namespace, folder: Path, cache_dir: Path, work: Path
) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FEDEMBED_PROGRESS": "off"}
    times: dict[str, list[float]] = {"knn": [], "mahalanobis": [], "relative-mahalanobis": []}
    last: dict[str, Any] = {}
    for repeat in range(args.repeats):
        for detector in times:
            command = [
                sys.executable, "-m", "fedembed", "--quiet", "node", "analyse", "anomalies",
                "--normal", str(folder / "train.csv"), "--input", str(folder / "test.csv"),
                "--label-column", "category", "--detector", detector, "--k", str(args.k),
                "--target-fpr", str(args.target_fpr), "--encoder-backend", args.encoder_backend,
                "--cache-dir", str(cache_dir), "--out", str(work / f"{detector}-{repeat}"),
                "--json",
            ]  # fmt: skip
            started = time.perf_counter()
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, cwd=REPO, check=False
            )
            times[detector].append(time.perf_counter() - started)
            if done.returncode != 0:
                raise SystemExit(f"anomalies command failed: {done.stderr.strip()}")
            last[detector] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "normal_records": last["knn"]["normal_records"],
        "input_records": last["knn"]["records"],
        "wall_s_median": {d: round(statistics.median(t), 2) for d, t in times.items()},
        "wall_s_all": {d: [round(x, 2) for x in t] for d, t in times.items()},
    }


def main() -> None:
    """Run the detection benchmark and the command timing; print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--held-out", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target-fpr", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--encoder-backend", choices=ENCODER_BACKENDS, default=DEFAULT_ENCODER_BACKEND
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    folder = resolve_dataset_dir(args.data_dir, "banking77", marker="train.csv")
    with tempfile.TemporaryDirectory(prefix="bench-anomalies-") as scratch:
        work = Path(scratch)
        cache_dir = args.cache_dir or Path(os.environ.get("FEDEMBED_CACHE_DIR") or work / "cache")
        encoder = RecordEncoder(encoder_backend=args.encoder_backend, cache_dir=cache_dir)
        load_before = os.getloadavg()
        result: dict[str, Any] = {
            "benchmark": "banking77 out-of-scope detection",
            "encoder_backend": args.encoder_backend,
            "k": args.k,
            "target_fpr": args.target_fpr,
            "seed": args.seed,
            **_detection(args, encoder, folder),
            "command": _command_times(args, folder, cache_dir, work),
            "cores": os.cpu_count(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
