"""Encode throughput: fedembed's ``Encoder.encode`` vs sentence-transformers called directly.

Both run in the same process on the same model object, interleaved (A, B, A, B, ...)
so machine noise hits both alike. Sentences are SciFact's queries (claims); documents
are SciFact corpus entries (title + text). Prints one JSON object.

    .venv/bin/python benchmarks/bench_encode.py --data-dir ../shared/data \
        [--docs 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from embedding_core.data import load_beir, resolve_dataset_dir
from embedding_core.encoder import DEFAULT_BATCH_SIZE, Encoder


def _rate(fn: Callable[[Sequence[str]], object], texts: Sequence[str]) -> float:
    started = time.perf_counter()
    fn(texts)
    return len(texts) / (time.perf_counter() - started)


def bench(
    texts: Sequence[str], encoder: Encoder, repeats: int, batch_size: int
) -> dict[str, object]:
    model = encoder.model

    def ours(t: Sequence[str]) -> object:
        return encoder.encode(t, batch_size=batch_size, show_progress=False)

    def direct(t: Sequence[str]) -> object:
        return model.encode(
            list(t), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )

    ours(texts[:64])
    direct(texts[:64])  # warm-up
    ours_rates, direct_rates = [], []
    for _ in range(repeats):
        ours_rates.append(_rate(ours, texts))
        direct_rates.append(_rate(direct, texts))
    ours_med, direct_med = statistics.median(ours_rates), statistics.median(direct_rates)
    return {
        "n": len(texts),
        "fedembed_per_s": round(ours_med, 2),
        "sentence_transformers_per_s": round(direct_med, 2),
        "ratio": round(ours_med / direct_med, 3),
        "fedembed_runs": [round(r, 2) for r in ours_rates],
        "sentence_transformers_runs": [round(r, 2) for r in direct_rates],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--docs", type=int, default=1000, help="corpus docs per run (0 = all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args()

    folder = resolve_dataset_dir(args.data_dir, "scifact", marker="corpus.jsonl")
    dataset = load_beir(folder)
    train = load_beir(folder, split="train")
    sentences = list(dataset.queries.values()) + list(train.queries.values())
    docs = dataset.corpus_texts if args.docs == 0 else dataset.corpus_texts[: args.docs]
    encoder = Encoder.load()
    result = {
        "benchmark": "encode_throughput",
        "model": encoder.model_id,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "sentences": bench(sentences, encoder, args.repeats, args.batch_size),
        "docs": bench(docs, encoder, args.repeats, args.batch_size),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
