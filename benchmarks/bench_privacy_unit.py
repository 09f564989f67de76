"""SciFact: what the honest privacy unit costs, and what the unit does not cover.

1. Units: SciFact's train split has more (query, document) records than queries; the
   records of one query are one privacy unit. Counts and the records-per-query spread.
2. Utility: the best central DP recipe of ``centralised_adapter.py`` (residual adapter,
   full batch, 100 epochs, Adam 3e-3, clip 1) trained with record-level units (each record
   sampled and clipped on its own: what was reported before) and with query units (a
   query's records summed, clipped and accounted as one), at the same epsilon; test
   nDCG@10 on SciFact's 300 test queries, for each ``--epsilons`` and ``--seeds``.
3. Documents: one "hub" document is added to the softmax's candidates (the corpus
   document, not relevant to any sampled record, with the highest mean cosine to the
   sampled queries; and a crafted one, the normalised mean of the sampled queries); how
   far it moves the clipped gradient sum, in clip norms, for ``--hub-records`` records
   drawn at random (base adapter, clip 1, temperature 0.05). One unit moves it by at
   most 1. ``--epsilons`` with no value measures only this.
4. The recipe that covers documents: negatives from public text plus units that hold each
   document with every query citing it (``document`` in ``--units``), at the same epsilon.

Prints one JSON object. Base vectors come from ``EmbeddingCache(--cache)`` (the first run
encodes the corpus, minutes on 2 cores).

    .venv/bin/python benchmarks/bench_privacy_unit.py --epsilons 8 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from centralised_adapter import DEFAULT_CACHE, DEFAULT_DATA, load_interactions
from numpy.typing import NDArray

from dp_training import (
    DPConfig,
    InteractionSet,
    TrainConfig,
    clipped_unit_gradient_sum,
    document_unit_ids,
    train_adapter,
)
from embedding_core import Adapter
from embedding_core.data.beir import BeirDataset
from embedding_core.evaluation.retrieval import RetrievalVectors, score_retrieval
from privacy import ACCOUNTANT, noise_multiplier_for

RECIPE = TrainConfig(epochs=100, batch_size=919, learning_rate=3e-3)
CLIP = 1.0
HUB_TEMPERATURE = 0.05


UNITS = ("record", "query", "document")


def with_units(data: InteractionSet, unit: str) -> InteractionSet:
    """``data`` with the privacy unit ``unit`` (one of :data:`UNITS`).

    ``record``: each record alone; ``query``: all records of one query; ``document``:
    query-document components with public negatives. The public stand-in is the corpus
    documents no train record cites (SciFact's abstracts are public; a deployment would
    use an open corpus of its domain).
    """
    ids: NDArray[np.int64] | None = None
    negatives: NDArray[np.float32] | None = None
    if unit == "record":
        ids = np.arange(len(data), dtype=np.int64)
    elif unit == "document":
        ids = document_unit_ids(data.query_vectors, data.positive_index)
        uncited = np.setdiff1d(np.arange(data.num_docs), data.positive_index)
        negatives = np.ascontiguousarray(data.doc_vectors[uncited])
    return InteractionSet(
        query_vectors=data.query_vectors,
        positive_index=data.positive_index,
        doc_vectors=data.doc_vectors,
        unit_ids=ids,
        negative_vectors=negatives,
    )


def unit_stats(data: InteractionSet) -> dict[str, Any]:
    """Records, queries and how many records each query has."""
    per_query = Counter(np.bincount(with_units(data, "query").unit_index).tolist())
    documents = with_units(data, "document")
    return {
        "records": len(data),
        "queries": with_units(data, "query").num_units,
        "document_components": documents.num_units,
        "largest_component_records": int(np.bincount(documents.unit_index).max()),
        "public_negatives": 0
        if documents.negative_vectors is None
        else len(documents.negative_vectors),
        "queries_by_records": {str(k): per_query[k] for k in sorted(per_query)},
        "queries_with_several_records": sum(v for k, v in per_query.items() if k > 1),
    }


def train_and_score(
    data: InteractionSet,
    vectors: RetrievalVectors,
    test: BeirDataset,
    *,
    epsilon: float,
    delta: float,
    seed: int,
) -> dict[str, Any]:
    """The recipe at ``epsilon`` for ``data``'s units, scored on the test split."""
    batches = math.ceil(data.num_units / RECIPE.batch_size)
    sigma = noise_multiplier_for(
        target_epsilon=epsilon,
        target_delta=delta,
        sample_rate=1 / batches,
        steps=RECIPE.epochs * batches,
    )
    dp = DPConfig(noise_multiplier=sigma, max_grad_norm=CLIP, delta=delta, noise_seed=seed)
    adapter = Adapter(data.dimension, side="query", seed=seed)
    report = train_adapter(adapter, data, replace(RECIPE, seed=seed), dp=dp)
    metrics = score_retrieval(vectors, test, adapter=adapter)
    return {
        "units": report.units,
        "sample_rate": report.sample_rate,
        "steps": report.steps,
        "noise_multiplier": sigma,
        "epsilon": report.epsilon,
        "seed": seed,
        "ndcg@10": metrics["ndcg@10"],
        "seconds": round(report.seconds, 1),
    }


def hub_shift(data: InteractionSet, records: int, seed: int) -> dict[str, Any]:
    """Clip norms one hub document moves the clipped sum by, over ``records`` records.

    ``corpus_hub``: the corpus document, relevant to none of the sampled records, with the
    highest mean cosine to them, removed from and added back to the candidates.
    ``crafted_hub``: a document written to be close to every query (the normalised mean
    of the sampled query vectors) added to the whole corpus.
    """
    rng = np.random.default_rng(seed)
    sample = with_units(data, "record").subset(rng.choice(len(data), records, replace=False))
    mean_cosine = data.doc_vectors @ sample.query_vectors.mean(axis=0)
    mean_cosine[sample.positive_index] = -np.inf
    hub = int(np.argmax(mean_cosine))
    keep = np.flatnonzero(np.arange(data.num_docs) != hub)
    remap = np.full(data.num_docs, -1, dtype=np.int64)
    remap[keep] = np.arange(keep.size)
    without = _with_docs(sample, data.doc_vectors[keep], remap[sample.positive_index])
    crafted = sample.query_vectors.mean(axis=0, keepdims=True)
    crafted /= np.linalg.norm(crafted)
    adapter = Adapter(data.dimension, side="query", seed=seed)
    pairs = {
        "corpus_hub": (without, _with_docs(sample, data.doc_vectors, sample.positive_index)),
        "crafted_hub": (
            sample,
            _with_docs(sample, np.vstack([data.doc_vectors, crafted]), sample.positive_index),
        ),
    }
    out: dict[str, Any] = {"records": records, "seed": seed}
    for name, pair in pairs.items():
        sums = [
            clipped_unit_gradient_sum(adapter, d, max_grad_norm=CLIP, temperature=HUB_TEMPERATURE)
            for d in pair
        ]
        out[f"{name}_shift_in_clip_norms"] = float(np.linalg.norm(sums[1] - sums[0])) / CLIP
    return out


def _with_docs(
    data: InteractionSet, docs: NDArray[np.float32], positives: NDArray[np.int64]
) -> InteractionSet:
    return InteractionSet(
        query_vectors=data.query_vectors,
        positive_index=positives,
        doc_vectors=np.ascontiguousarray(docs, dtype=np.float32),
        unit_ids=data.unit_ids,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--epsilons", type=float, nargs="*", default=[8.0, 1.0])
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--hub-records", type=int, nargs="+", default=[150, 300, 600])
    parser.add_argument("--units", nargs="+", choices=UNITS, default=list(UNITS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data, vectors, test = load_interactions(args.data, args.cache)
    hub = [hub_shift(data, n, seed=0) for n in args.hub_records]
    logging.warning("%s", json.dumps(hub))
    runs: list[dict[str, Any]] = []
    for epsilon in args.epsilons:
        for unit in args.units:
            results = [
                train_and_score(
                    with_units(data, unit),
                    vectors,
                    test,
                    epsilon=epsilon,
                    delta=args.delta,
                    seed=seed,
                )
                for seed in args.seeds
            ]
            scores = [r["ndcg@10"] for r in results]
            summary = {
                "unit": unit,
                "target_epsilon": epsilon,
                "ndcg@10_mean": statistics.fmean(scores),
                "ndcg@10_sd": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                "runs": results,
            }
            runs.append(summary)
            logging.warning("%s", json.dumps(summary))
    print(
        json.dumps(
            {
                "dataset": "scifact",
                "units": unit_stats(data),
                "base_ndcg@10": score_retrieval(vectors, test)["ndcg@10"],
                "recipe": {
                    "epochs": RECIPE.epochs,
                    "batch_size": RECIPE.batch_size,
                    "learning_rate": RECIPE.learning_rate,
                    "optimizer": RECIPE.optimizer,
                    "temperature": RECIPE.temperature,
                    "max_grad_norm": CLIP,
                },
                "delta": args.delta,
                "accountant": f"{ACCOUNTANT}, per unit, this training only",
                "utility": runs,
                "hub_document": hub,
                "threads": args.threads,
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
