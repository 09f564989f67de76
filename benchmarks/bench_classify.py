"""BANKING77 intent classification by the node's linear head, against scikit-learn.

On the same embeddings (the bundled model, ``onnx-int8`` unless ``--encoder-backend``,
through the embedding cache), in the same run:

* train -> test accuracy and macro-F1 of ``analytics.LinearClassifier`` at the default
  ``C`` and of scikit-learn's ``LogisticRegression`` at its default ``C=1`` and at ours
  (fit times: medians of ``--repeats`` interleaved fits, ours then scikit-learn's, both
  on one BLAS thread as ours runs);
* the evidence for the default ``C``: 5-fold macro-F1 on the train split of every ``C``
  of ``analytics.C_GRID`` (``--skip-grid`` leaves it out);
* the wall time of ``fedembed node analyse classify`` (a subprocess: start-up, load,
  cached encode, 5-fold cross-validation, fit, save) on the 10,003 train records, and
  of ``predict`` on the 3,080 test records (median of ``--cli-repeats``), whose accuracy
  must equal the in-process one.

Prints one JSON object (with the load average before and after)::

    .venv/bin/python benchmarks/bench_classify.py --data-dir ../shared/data \
        [--cache-dir DIR] [--repeats 3] [--cli-repeats 2] [--skip-grid]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from analytics import C_GRID, DEFAULT_C, LinearClassifier, choose_c, load_labelled_texts
from client_node.analysis import RecordEncoder
from embedding_core.data import resolve_dataset_dir
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, ENCODER_BACKENDS

REPO_ROOT = Path(__file__).resolve().parents[1]


def _scores(truth: list[str], predicted: list[str]) -> dict[str, float]:
    return {
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
    }


def _timed_fits(
    train: NDArray[np.float32], labels: list[str], c: float, repeats: int
) -> tuple[LinearClassifier, LogisticRegression, dict[str, Any]]:
    """Fit ours and scikit-learn's at ``c``, interleaved ``repeats`` times: medians."""
    ours_s: list[float] = []
    theirs_s: list[float] = []
    ours = LinearClassifier(c=c)
    theirs = LogisticRegression(C=c)
    for _ in range(repeats):
        started = time.perf_counter()
        ours = LinearClassifier(c=c).fit(train, labels)
        ours_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        with threadpool_limits(limits=1):  # as ours fits (analytics.linear_classifier)
            theirs = LogisticRegression(C=c).fit(train, labels)
        theirs_s.append(time.perf_counter() - started)
    timing = {
        "ours_fit_s": round(statistics.median(ours_s), 2),
        "sklearn_fit_s": round(statistics.median(theirs_s), 2),
        "fit_time_ratio_ours_over_sklearn": round(
            statistics.median(o / t for o, t in zip(ours_s, theirs_s, strict=True)), 3
        ),
        "ours_iterations": ours.n_iter,
        "sklearn_iterations": int(theirs.n_iter_[0]),
    }
    return ours, theirs, timing


def _cli(*args: str) -> tuple[float, dict[str, Any]]:
    """Run ``fedembed ARGS --json`` as a user does: (wall seconds, its JSON line)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FEDEMBED_PROGRESS": "off"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "fedembed", "--quiet", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"fedembed {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: usual)")
    parser.add_argument(
        "--encoder-backend", default=DEFAULT_ENCODER_BACKEND, choices=ENCODER_BACKENDS
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved fits per model")
    parser.add_argument("--cli-repeats", type=int, default=2)
    parser.add_argument("--skip-grid", action="store_true", help="no 5-fold C grid")
    args = parser.parse_args()

    folder = resolve_dataset_dir(args.data_dir, "banking77", marker="train.csv")
    train = load_labelled_texts(folder / "train.csv", label_column="category")
    test = load_labelled_texts(folder / "test.csv", label_column="category")
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    encoder = RecordEncoder(encoder_backend=args.encoder_backend, cache_dir=cache_dir)
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    x_train = encoder.encode(train.texts, what="encode BANKING77 train")
    x_test = encoder.encode(test.texts, what="encode BANKING77 test")
    encode_s = time.perf_counter() - started
    y_train, y_test = train.require_labels(), test.require_labels()

    ours, same_c, timing = _timed_fits(x_train, y_train, DEFAULT_C, args.repeats)
    with threadpool_limits(limits=1):
        default_sklearn = LogisticRegression().fit(x_train, y_train)
    result: dict[str, Any] = {
        "dataset": "banking77",
        "encoder_backend": args.encoder_backend,
        "train_records": len(train),
        "test_records": len(test),
        "classes": len(set(y_train)),
        "encode_s_first_call": round(encode_s, 2),
        "c": DEFAULT_C,
        "test": {
            "ours": _scores(y_test, ours.predict(x_test)),
            "sklearn_default_c1": _scores(y_test, list(default_sklearn.predict(x_test))),
            f"sklearn_c{DEFAULT_C:g}": _scores(y_test, list(same_c.predict(x_test))),
        },
        "prediction_agreement_with_sklearn_same_c": round(
            float(np.mean(np.array(ours.predict(x_test)) == same_c.predict(x_test))), 4
        ),
        "max_coef_difference_same_c": round(float(np.abs(ours.coef - same_c.coef_).max()), 5),
        "fit": timing,
    }
    if not args.skip_grid:
        started = time.perf_counter()
        best, means = choose_c(x_train, y_train, grid=C_GRID, folds=5, seed=0)
        result["c_grid_cv5_train_macro_f1"] = {f"{c:g}": round(v, 4) for c, v in means.items()}
        result["c_grid_best"] = best
        result["c_grid_s"] = round(time.perf_counter() - started, 1)

    cache_flag = ["--cache-dir", str(cache_dir)] if cache_dir else []
    backend_flag = ["--encoder-backend", args.encoder_backend]
    classify_s: list[float] = []
    predict_s: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "classifier"
        for _ in range(args.cli_repeats):
            wall, classified = _cli(
                "node", "analyse", "classify", "--input", str(folder / "train.csv"),
                "--label-column", "category", "--folds", "5", "--out", str(out),
                *backend_flag, *cache_flag,
            )  # fmt: skip
            classify_s.append(wall)
            wall, predicted = _cli(
                "node", "analyse", "predict", "--classifier", str(out),
                "--input", str(folder / "test.csv"), "--label-column", "category",
                "--out", str(Path(scratch) / "predictions.jsonl"), *cache_flag,
            )  # fmt: skip
            predict_s.append(wall)
    result["cli"] = {
        "classify_wall_s": round(statistics.median(classify_s), 1),
        "classify_wall_s_each": [round(s, 1) for s in classify_s],
        "classify_steps_s": classified["seconds"],
        "classify_cv5_accuracy": round(classified["accuracy"], 4),
        "classify_cv5_macro_f1": round(classified["macro_f1"], 4),
        "predict_wall_s": round(statistics.median(predict_s), 1),
        "predict_test_accuracy": round(predicted["accuracy"], 4),
        "predict_test_macro_f1": round(predicted["macro_f1"], 4),
        "under_a_minute": statistics.median(classify_s) < 60.0,
    }
    result["cpus"] = os.cpu_count()
    result["load_before"] = load_before
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
