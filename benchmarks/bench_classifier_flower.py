"""The DP federated classifier head on BANKING77's 77 intents through Flower, beside the recipe.

The quality check of ``bench_federated_classifier.py`` (a linear softmax head on the
shared encoder's vectors, test accuracy on BANKING77's 3,080 test queries), run through
the product's whole path: Flower's simulation engine with the real ServerApp (``task =
"classifier"``, the 77 intents as the public label set) and ClientApp, three members
holding the train split dealt round-robin (10,003 labelled queries), provisioned kits
after the CKKS key ceremony, each member encoding its own ``records.csv`` through its
node embedding cache, the CKKS secure sum with each node's noise share, the ledgers.

In the same run, on the same vectors: the centralised :class:`analytics.LinearClassifier`
(the reference) and the in-process recipe (:func:`dp_training.federated_classifier`)
with the same split, epsilon, rounds and learning rate. The published head
(``classifier_head.json``) labels the test vectors.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_classifier_flower.py \
        --data-dir ../shared/data [--epsilon 8] [--rounds 50]

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

from flower_members import NODES, machine, run_task, write_members  # noqa: E402

from analytics import LinearClassifier, load_labelled_texts  # noqa: E402
from dp_training.classifier_head import ClassifierHead  # noqa: E402
from dp_training.dp_classifier_head import (  # noqa: E402
    DEFAULT_CLASSIFIER_LEARNING_RATE,
    calibrate_dp_classifier,
)
from dp_training.federated_classifier import federated_classifier  # noqa: E402
from embedding_core.cache import EmbeddingCache  # noqa: E402
from embedding_core.data import resolve_dataset_dir  # noqa: E402
from embedding_core.encoder import Encoder  # noqa: E402

DELTA = 1e-5


def _accuracy(truth: list[str], predicted: list[str]) -> float:
    return float(np.mean([a == b for a, b in zip(truth, predicted, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=DEFAULT_CLASSIFIER_LEARNING_RATE)
    args = parser.parse_args()

    banking = resolve_dataset_dir(args.data_dir, "banking77", marker="train.csv")
    train = load_labelled_texts(banking / "train.csv", label_column="category")
    test = load_labelled_texts(banking / "test.csv", label_column="category")
    train_labels, test_labels = train.require_labels(), test.require_labels()
    labels = tuple(sorted(set(train_labels)))
    load_before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="fedembed-bench-classifier-flower-"))
    try:
        encoder = Encoder.load()
        cache = EmbeddingCache(work / "scoring-cache")
        train_vectors = cache.get_or_encode(encoder, train.texts, what="encode BANKING77 train")
        test_vectors = cache.get_or_encode(encoder, test.texts, what="encode BANKING77 test")

        # The members: the train split dealt round-robin; kits after the ceremony.
        rows = [[t, y] for t, y in zip(train.texts, train_labels, strict=True)]
        members, kits = write_members(
            work, ["text", "label"], [rows[i::NODES] for i in range(NODES)]
        )
        summary, flower_s = run_task(
            work,
            members,
            kits,
            epsilon=args.epsilon,
            rounds=args.rounds,
            task="classifier",
            classifier_labels=",".join(labels),
            classifier_rounds=args.rounds,
            classifier_epsilon=args.epsilon,
            classifier_learning_rate=args.learning_rate,
            run_tag="bench-classifier-flower",
        )
        head = ClassifierHead.load(work / "out" / "classifier_head.json")
        flower = _accuracy(test_labels, head.predict(test_vectors))

        # The same split, epsilon, rounds and learning rate in process; and centralised.
        targets = np.array([labels.index(x) for x in train_labels], dtype=np.int64)
        nodes = [(train_vectors[i::NODES], targets[i::NODES]) for i in range(NODES)]
        in_process = federated_classifier(
            nodes,
            labels,
            rounds=args.rounds,
            calibration=calibrate_dp_classifier(
                epsilon=args.epsilon, delta=DELTA, rounds=args.rounds, shares=NODES
            ),
            rng=np.random.default_rng([0, args.rounds]),
            learning_rate=args.learning_rate,
        )
        central = LinearClassifier().fit(train_vectors, train_labels)
        result: dict[str, Any] = {
            "benchmark": "federated DP classifier head through Flower's simulation engine, "
            "BANKING77",
            "train_records": len(train),
            "test_records": len(test),
            "labels": len(labels),
            "nodes": NODES,
            "epsilon": args.epsilon,
            "delta": DELTA,
            "rounds": args.rounds,
            "learning_rate": args.learning_rate,
            "noise_shares": NODES,
            "flower": {
                "accuracy": flower,
                "seconds": round(flower_s, 1),
                "rounds_released": sum(bool(r["released"]) for r in summary["rounds"]),
            },
            "in_process_accuracy": _accuracy(test_labels, in_process.predict(test_vectors)),
            "centralised_accuracy": _accuracy(test_labels, central.predict(test_vectors)),
            "machine": machine(load_before),
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
