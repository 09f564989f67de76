"""Federated DP classifier head against the centralised linear classifier, on BANKING77.

BANKING77 (77 intents) encoded by the product's encoder through the embedding cache:

- **centralised**: :class:`analytics.LinearClassifier` (softmax regression, L2 at the
  default ``C``, L-BFGS; scikit-learn's objective) on the pooled train vectors, no DP:
  the reference.
- **federated**: :func:`dp_training.federated_classifier`, 3 members holding the train
  split dealt round-robin, full-batch gradient rounds with per-record clipping (C = 1),
  the count in the same vector with weight w = 0.3 (sensitivity sqrt(C^2 + w^2) =
  1.044), momentum 0.9, learning rate ``--learning-rate``; without DP and with DP at
  each of ``--epsilons`` (delta 1e-5, unit one record, calibrated for the fellow member
  with t = 3 noise shares), for each round count in ``--rounds``. ``best_fixed_rounds``
  picks, per epsilon, the round count with the best mean accuracy (one choice for all
  seeds).

Accuracy and macro-F1 on the BANKING77 test split (3,080 queries). Each federated row is
the mean (and standard deviation) over ``--seeds`` noise seeds. Prints one JSON object.

    .venv/bin/python benchmarks/bench_federated_classifier.py --data-dir ../shared/data \
        [--seeds 3] [--rounds 5 10 20 30 50 100] [--epsilons 1 8]
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
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits

from analytics import LinearClassifier, load_labelled_texts
from dp_training.classifier_head import ClassifierHead
from dp_training.dp_classifier_head import (
    DEFAULT_CLASSIFIER_CLIP,
    DEFAULT_CLASSIFIER_COUNT_WEIGHT,
    DEFAULT_CLASSIFIER_LEARNING_RATE,
    DEFAULT_CLASSIFIER_MOMENTUM,
    calibrate_dp_classifier,
)
from dp_training.federated_classifier import federated_classifier
from embedding_core.cache import EmbeddingCache
from embedding_core.data import resolve_dataset_dir
from embedding_core.encoder import Encoder
from privacy.observers import Observer

NODES = 3
DELTA = 1e-5


def _scores(truth: list[str], predicted: list[str]) -> dict[str, float]:
    return {
        "accuracy": float(np.mean(np.array(truth) == np.array(predicted))),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
    }


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        out[key] = round(statistics.fmean(values), 4)
        out[f"{key}_std"] = round(statistics.pstdev(values), 4)
    return out


def run(
    train: NDArray[np.float32],
    train_labels: list[str],
    test: NDArray[np.float32],
    test_labels: list[str],
    *,
    seeds: int,
    rounds_grid: list[int],
    epsilons: list[float],
    learning_rate: float,
) -> dict[str, Any]:
    labels = tuple(sorted(set(train_labels)))
    targets = np.array([labels.index(x) for x in train_labels], dtype=np.int64)
    nodes = [(train[i::NODES], targets[i::NODES]) for i in range(NODES)]
    started = time.perf_counter()
    central = LinearClassifier().fit(train, train_labels)
    central_s = time.perf_counter() - started
    reference = _scores(test_labels, central.predict(test))
    rows: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for rounds in rounds_grid:
        for epsilon in [None, *epsilons]:
            name = ("federated" if epsilon is None else f"dp_eps{epsilon:g}") + f"/r{rounds}"
            calibration = (
                None
                if epsilon is None
                else calibrate_dp_classifier(
                    epsilon=epsilon, delta=DELTA, rounds=rounds, shares=NODES
                )
            )
            scores = []
            started = time.perf_counter()
            for seed in range(seeds if epsilon is not None else 1):
                head: ClassifierHead = federated_classifier(
                    nodes,
                    labels,
                    rounds=rounds,
                    calibration=calibration,
                    rng=np.random.default_rng([seed, rounds]),
                    learning_rate=learning_rate,
                )
                scores.append(_scores(test_labels, head.predict(test)))
            seconds[name] = round((time.perf_counter() - started) / len(scores), 2)
            rows[name] = _summary(scores)
    best: dict[str, Any] = {}
    for method in ["federated", *(f"dp_eps{e:g}" for e in epsilons)]:
        options = {r: rows[f"{method}/r{r}"] for r in rounds_grid}
        chosen = max(options, key=lambda r: options[r]["accuracy"])
        best[method] = {
            "rounds": chosen,
            **options[chosen],
            "accuracy_gap_to_centralised": round(
                reference["accuracy"] - options[chosen]["accuracy"], 4
            ),
        }
    return {
        "centralised": {**{k: round(v, 4) for k, v in reference.items()}, "fit_s": central_s},
        "federated": rows,
        "seconds_per_run": seconds,
        "best_fixed_rounds": best,
    }


def _calibrations(rounds_grid: list[int], epsilons: list[float]) -> list[dict[str, Any]]:
    out = []
    for epsilon in epsilons:
        for rounds in rounds_grid:
            c = calibrate_dp_classifier(epsilon=epsilon, delta=DELTA, rounds=rounds, shares=NODES)
            out.append(
                {
                    "epsilon": epsilon,
                    "rounds": rounds,
                    "noise_multiplier": round(c.noise_multiplier, 4),
                    "sum_noise_std": round(c.sum_noise_std, 4),
                    "count_noise_std": round(c.count_noise_std, 4),
                    "epsilon_coordinator": round(c.epsilon_for_observer(Observer.COORDINATOR), 3),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, nargs="+", default=[5, 10, 20, 30, 50, 100])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 8.0])
    parser.add_argument("--learning-rate", type=float, default=DEFAULT_CLASSIFIER_LEARNING_RATE)
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: the usual)")
    args = parser.parse_args()

    banking = resolve_dataset_dir(args.data_dir, "banking77", marker="train.csv")
    train = load_labelled_texts(banking / "train.csv", label_column="category")
    test = load_labelled_texts(banking / "test.csv", label_column="category")
    load_before = [round(x, 2) for x in os.getloadavg()]
    encoder = Encoder.load()
    cache = EmbeddingCache(Path(args.cache_dir) if args.cache_dir else None)
    started = time.perf_counter()
    train_vectors = cache.get_or_encode(encoder, train.texts, what="encode BANKING77 train")
    test_vectors = cache.get_or_encode(encoder, test.texts, what="encode BANKING77 test")
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        result = run(
            train_vectors,
            train.require_labels(),
            test_vectors,
            test.require_labels(),
            seeds=args.seeds,
            rounds_grid=args.rounds,
            epsilons=args.epsilons,
            learning_rate=args.learning_rate,
        )
    print(
        json.dumps(
            {
                "benchmark": "federated_classifier_banking77",
                "train_records": len(train),
                "test_records": len(test),
                "classes": len(set(train.require_labels())),
                "nodes": NODES,
                "split": "train split dealt round-robin",
                "delta": DELTA,
                "unit": "one record; sensitivity sqrt(C^2 + w^2) on (clipped gradient sum, "
                f"w * count), C = {DEFAULT_CLASSIFIER_CLIP}, w = "
                f"{DEFAULT_CLASSIFIER_COUNT_WEIGHT}; fellow-member view, t = {NODES} shares",
                "learning_rate": args.learning_rate,
                "momentum": DEFAULT_CLASSIFIER_MOMENTUM,
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
