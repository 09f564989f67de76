"""SciFact: a query adapter trained centrally on all train pairs, without and with DP-SGD.

Trains query-side adapters on SciFact's 919 train (query, relevant document) pairs,
negatives = the whole 5,183-document corpus, and scores SciFact test nDCG@10 (300
queries) with ``score_retrieval``. DP recipes are calibrated to epsilon ``--epsilon``
at delta ``--delta`` per record with Opacus's RDP accountant (noise from
``noise_multiplier_for`` for the recipe's sample rate and steps). ``--split K`` also trains
each of K equal random parts of the records on its own (what one node of K could do
alone at the same epsilon) and reports every part and their mean.

Base vectors come from ``EmbeddingCache(--cache)``; the first run encodes the corpus
(about 4 minutes on 2 cores). Seeds are fixed (``noise_seed``) so runs repeat; real
training leaves the noise seed to the OS.

    .venv/bin/python benchmarks/centralised_adapter.py                      # best recipes
    .venv/bin/python benchmarks/centralised_adapter.py --recipes all --split 3
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dp_training import (
    DPConfig,
    InteractionSet,
    TrainConfig,
    train_adapter,
)
from embedding_core import Adapter, EmbeddingCache, Encoder
from embedding_core.data.beir import BeirDataset, load_beir
from embedding_core.evaluation.retrieval import (
    RetrievalVectors,
    embed_retrieval,
    score_retrieval,
)
from privacy import noise_multiplier_for

DEFAULT_DATA = Path("/work/shared/data/scifact")
DEFAULT_CACHE = Path("/work/fedembed-cache")


@dataclass(frozen=True)
class Recipe:
    """One training recipe: adapter shape, hyper-parameters, DP or not."""

    name: str
    config: TrainConfig
    dp: bool = False
    kind: str = "residual_linear"
    rank: int | None = None
    max_grad_norm: float = 1.0
    frozen: tuple[str, ...] = ()
    clip_only: bool = False
    down_from_doc_pca: bool = False
    note: str = ""


def _tc(**kwargs: Any) -> TrainConfig:
    return TrainConfig(**kwargs)


def _full(epochs: int = 100, **kwargs: Any) -> TrainConfig:
    """Full-batch DP: Poisson sample rate 1, one step per epoch."""
    return TrainConfig(epochs=epochs, batch_size=919, **kwargs)


_RES_DP = "dp_res_b919_e100_adam3e-3"

# What was tried (see the report); BEST are the defaults.
RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        # --- non-DP ---------------------------------------------------------------------
        Recipe("plain_b64_e20_adam1e-3", _tc(epochs=20, batch_size=64, learning_rate=1e-3)),
        Recipe("plain_b64_e40_adam1e-3", _tc(epochs=40, batch_size=64, learning_rate=1e-3)),
        Recipe("plain_b64_e20_adam3e-3", _tc(epochs=20, batch_size=64, learning_rate=3e-3)),
        Recipe(
            "plain_b64_e40_adam1e-3_wd0.1",
            _tc(epochs=40, batch_size=64, learning_rate=1e-3, weight_decay=0.1),
        ),
        Recipe("plain_b919_e100_sgd0.1", _full(learning_rate=0.1, optimizer="sgd")),
        # --- DP diagnostics: clipping without noise (epsilon infinite) ----------------
        Recipe("cliponly_b919_e100_adam3e-3", _full(learning_rate=3e-3), dp=True, clip_only=True),
        Recipe(
            "cliponly_b919_e100_sgd0.3",
            _full(learning_rate=0.3, optimizer="sgd"),
            dp=True,
            clip_only=True,
        ),
        # --- DP, residual_linear: batch / epochs / lr ---------------------------------
        Recipe(
            "dp_res_b64_e10_adam1e-3", _tc(epochs=10, batch_size=64, learning_rate=1e-3), dp=True
        ),
        Recipe(
            "dp_res_b256_e30_adam1e-3", _tc(epochs=30, batch_size=256, learning_rate=1e-3), dp=True
        ),
        Recipe(
            "dp_res_b460_e100_adam3e-3",
            _tc(epochs=100, batch_size=460, learning_rate=3e-3),
            dp=True,
        ),
        Recipe("dp_res_b919_e100_adam1e-3", _full(learning_rate=1e-3), dp=True),
        Recipe(_RES_DP, _full(learning_rate=3e-3), dp=True),
        Recipe("dp_res_b919_e30_adam3e-3", _full(30, learning_rate=3e-3), dp=True),
        Recipe("dp_res_b919_e200_adam1.5e-3", _full(200, learning_rate=1.5e-3), dp=True),
        Recipe("dp_res_b919_e100_adam1e-2", _full(learning_rate=1e-2), dp=True),
        # --- DP, residual_linear: temperature, weight decay, clip, SGD -----------------
        Recipe(
            "dp_res_b919_e100_adam3e-3_t0.1", _full(learning_rate=3e-3, temperature=0.1), dp=True
        ),
        Recipe(
            "dp_res_b919_e100_adam3e-3_t0.02", _full(learning_rate=3e-3, temperature=0.02), dp=True
        ),
        Recipe(
            "dp_res_b919_e100_adam3e-3_wd1", _full(learning_rate=3e-3, weight_decay=1.0), dp=True
        ),
        Recipe(
            "dp_res_b919_e100_adam3e-3_c0.1", _full(learning_rate=3e-3), dp=True, max_grad_norm=0.1
        ),
        Recipe("dp_res_b919_e100_sgd0.03", _full(learning_rate=0.03, optimizer="sgd"), dp=True),
        Recipe("dp_res_b919_e100_sgd0.1", _full(learning_rate=0.1, optimizer="sgd"), dp=True),
        Recipe(
            "dp_bias_only_b919_e100_adam1e-2",
            _full(learning_rate=1e-2),
            dp=True,
            frozen=("linear.weight",),
        ),
        # --- DP, low_rank --------------------------------------------------------------
        Recipe(
            "dp_lr8_b919_e100_adam1e-2", _full(learning_rate=1e-2), dp=True, kind="low_rank", rank=8
        ),
        Recipe(
            "dp_lr16_b919_e100_adam1e-2",
            _full(learning_rate=1e-2),
            dp=True,
            kind="low_rank",
            rank=16,
        ),
        Recipe(
            "dp_lr32_b919_e100_adam3e-3",
            _full(learning_rate=3e-3),
            dp=True,
            kind="low_rank",
            rank=32,
        ),
        Recipe(
            "dp_lr64_b919_e100_adam1e-2",
            _full(learning_rate=1e-2),
            dp=True,
            kind="low_rank",
            rank=64,
        ),
        Recipe(
            "dp_lr16_frozen_down_b919_e100_adam1e-2",
            _full(learning_rate=1e-2),
            dp=True,
            kind="low_rank",
            rank=16,
            frozen=("down.weight",),
        ),
        Recipe(
            "dp_lr128_docpca_down_b919_e100_adam3e-3",
            _full(learning_rate=3e-3),
            dp=True,
            kind="low_rank",
            rank=128,
            frozen=("down.weight",),
            down_from_doc_pca=True,
            note="down = top-128 principal directions of the document vectors, frozen: "
            "depends on the documents, which DP does not cover",
        ),
    ]
}
BEST = ["plain_b64_e20_adam1e-3", _RES_DP]


def load_interactions(
    data_dir: Path, cache_dir: Path
) -> tuple[InteractionSet, RetrievalVectors, BeirDataset]:
    """SciFact train pairs as an InteractionSet, and the test split's vectors."""
    encoder = Encoder.load()
    cache = EmbeddingCache(cache_dir)
    test = load_beir(data_dir, split="test")
    vectors = embed_retrieval(encoder, test, cache=cache)
    train = load_beir(data_dir, split="train")
    doc_row = {doc_id: row for row, doc_id in enumerate(test.corpus_ids)}
    query_ids = sorted(train.queries)
    query_vectors = cache.get_or_encode(encoder, [train.queries[q] for q in query_ids])
    query_row = {qid: row for row, qid in enumerate(query_ids)}
    pairs = [
        (query_row[qid], doc_row[doc_id])
        for qid in query_ids
        for doc_id, score in sorted(train.qrels[qid].items())
        if score > 0 and doc_id in doc_row
    ]
    rows = np.array([q for q, _ in pairs], dtype=np.int64)
    data = InteractionSet(
        query_vectors=np.ascontiguousarray(query_vectors[rows]),
        positive_index=np.array([d for _, d in pairs], dtype=np.int64),
        doc_vectors=vectors.documents,
    )
    return data, vectors, test


def _dp_config(recipe: Recipe, records: int, epsilon: float, delta: float, seed: int) -> DPConfig:
    # As Opacus's DPDataLoader: sample rate 1 / batches per epoch, that many steps per epoch.
    batches = math.ceil(records / recipe.config.batch_size)
    sample_rate = 1 / batches
    steps = recipe.config.epochs * int(1 / sample_rate)
    sigma = noise_multiplier_for(
        target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps
    )
    return DPConfig(
        noise_multiplier=sigma, max_grad_norm=recipe.max_grad_norm, delta=delta, noise_seed=seed
    )


def run_recipe(
    recipe: Recipe,
    data: InteractionSet,
    vectors: RetrievalVectors,
    test: BeirDataset,
    *,
    epsilon: float,
    delta: float,
    seed: int,
) -> dict[str, Any]:
    """Train one adapter with ``recipe`` on ``data`` and score it on SciFact test."""
    adapter = Adapter(data.dimension, kind=recipe.kind, rank=recipe.rank, side="query", seed=seed)
    if recipe.down_from_doc_pca and adapter.down is not None:
        centred = data.doc_vectors.astype(np.float64) - data.doc_vectors.mean(axis=0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        with torch.no_grad():
            adapter.down.weight.copy_(torch.from_numpy(components[: adapter.down.out_features]))
    for name, parameter in adapter.named_parameters():
        if name in recipe.frozen:
            parameter.requires_grad_(False)
    config = replace(recipe.config, seed=seed)
    dp = _dp_config(recipe, data.num_units, epsilon, delta, seed) if recipe.dp else None
    if dp is not None and recipe.clip_only:
        dp = replace(dp, noise_multiplier=0.0)
    report = train_adapter(adapter, data, config, dp=dp)
    metrics = score_retrieval(vectors, test, adapter=adapter)
    return {
        "recipe": recipe.name,
        "kind": recipe.kind,
        "rank": recipe.rank,
        "frozen": list(recipe.frozen),
        "records": len(data),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "temperature": config.temperature,
        "weight_decay": config.weight_decay,
        "optimizer": config.optimizer,
        "max_grad_norm": None if dp is None else dp.max_grad_norm,
        "noise_multiplier": report.noise_multiplier,
        "sample_rate": report.sample_rate,
        "steps": report.steps,
        "epsilon": report.epsilon,
        "delta": report.delta,
        "ndcg@10": metrics["ndcg@10"],
        "recall@100": metrics["recall@100"],
        "final_loss": report.losses[-1],
        "seconds": round(report.seconds, 1),
        "seed": seed,
        "note": recipe.note,
    }


def split_records(data: InteractionSet, parts: int, seed: int) -> list[InteractionSet]:
    """``parts`` equal random, disjoint subsets of the records (same documents)."""
    order = np.random.default_rng(seed).permutation(len(data))
    size = len(data) // parts
    return [data.subset(order[i * size : (i + 1) * size]) for i in range(parts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--recipes", nargs="+", default=BEST, help="names, or 'all'")
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--split", type=int, default=0, help="also train K parts alone")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="print the recipes and exit")
    args = parser.parse_args()
    if args.list:
        for recipe in RECIPES.values():
            print(recipe)
        return
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    names = list(RECIPES) if args.recipes == ["all"] else args.recipes
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; see --list")
    started = time.perf_counter()
    data, vectors, test = load_interactions(args.data, args.cache)
    base = score_retrieval(vectors, test)
    runs: list[dict[str, Any]] = []
    splits: list[dict[str, Any]] = []
    for name in names:
        for seed in args.seeds:
            result = run_recipe(
                RECIPES[name],
                data,
                vectors,
                test,
                epsilon=args.epsilon,
                delta=args.delta,
                seed=seed,
            )
            runs.append(result)
            logging.warning("%s", json.dumps(result))
        if args.split > 1:
            for seed in args.seeds:
                parts = [
                    run_recipe(
                        RECIPES[name],
                        part,
                        vectors,
                        test,
                        epsilon=args.epsilon,
                        delta=args.delta,
                        seed=seed,
                    )
                    for part in split_records(data, args.split, seed)
                ]
                scores = [p["ndcg@10"] for p in parts]
                summary = {
                    "recipe": name,
                    "parts": args.split,
                    "seed": seed,
                    "records_per_part": parts[0]["records"],
                    "epsilon": parts[0]["epsilon"],
                    "ndcg@10_per_part": scores,
                    "ndcg@10_mean": statistics.fmean(scores),
                    "seconds": round(sum(p["seconds"] for p in parts), 1),
                }
                splits.append(summary)
                logging.warning("%s", json.dumps(summary))
    print(
        json.dumps(
            {
                "dataset": "scifact",
                "train_records": len(data),
                "train_queries": int(np.unique(data.query_vectors, axis=0).shape[0]),
                "test_queries": len(vectors.query_ids),
                "documents": data.num_docs,
                "target_epsilon": args.epsilon,
                "delta": args.delta,
                "accountant": "opacus rdp, record level, this training only",
                "base": {"ndcg@10": base["ndcg@10"], "recall@100": base["recall@100"]},
                "runs": runs,
                "splits": splits,
                "threads": args.threads,
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
