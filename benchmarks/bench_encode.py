"""Encode throughput per encoder backend (torch fp32, ONNX fp32, ONNX int8), side by side.

All backends run in the same process on the same texts, interleaved (torch, onnx,
onnx-int8, torch, ...) so machine noise hits them alike; the medians of the repeats
and each backend's ratio to the first backend are printed as one JSON object.
Sentences are STS-B test sentences (short); documents are SciFact corpus entries
(title + text, truncated at the model's 256 tokens). ``sentence-transformers`` as a
backend name times the torch model called directly (fedembed's overhead).

    .venv/bin/python benchmarks/bench_encode.py --data-dir ../shared/data \
        [--backends torch,onnx,onnx-int8] [--sentences 1000] [--docs 300] [--repeats 5]
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

from embedding_core.data import load_beir, load_stsb, resolve_dataset_dir
from embedding_core.encoder import DEFAULT_BATCH_SIZE, ENCODER_BACKENDS, Encoder, check_backend
from embedding_core.onnx_encoder import onnx_threads

DIRECT = "sentence-transformers"

Encode = Callable[[Sequence[str]], object]


def _rate(fn: Encode, texts: Sequence[str]) -> float:
    started = time.perf_counter()
    fn(texts)
    return len(texts) / (time.perf_counter() - started)


def _encoders(backends: list[str], batch_size: int) -> dict[str, Encode]:
    out: dict[str, Encode] = {}
    for name in backends:
        if name == DIRECT:
            model = Encoder.load(backend="torch").model

            def direct(t: Sequence[str], model: object = model) -> object:
                return model.encode(  # type: ignore[attr-defined]
                    list(t),
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )

            out[name] = direct
            continue
        encoder = Encoder.load(backend=check_backend(name))
        encoder.prepare()  # the one-off export / model load is not timed

        def ours(t: Sequence[str], encoder: Encoder = encoder) -> object:
            return encoder.encode(t, batch_size=batch_size, show_progress=False)

        out[name] = ours
    return out


def bench(texts: Sequence[str], fns: dict[str, Encode], repeats: int) -> dict[str, object]:
    """Interleaved repeats over ``texts``; medians, ratios to the first backend, runs."""
    for fn in fns.values():
        fn(texts[:64])  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            rates[name].append(_rate(fn, texts))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    first = next(iter(fns))
    return {
        "n": len(texts),
        "per_s": {name: round(m, 1) for name, m in medians.items()},
        f"ratio_to_{first}": {name: round(m / medians[first], 3) for name, m in medians.items()},
        "runs": {name: [round(r, 1) for r in rs] for name, rs in rates.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--backends", default=",".join(ENCODER_BACKENDS))
    parser.add_argument("--sentences", type=int, default=1000, help="STS-B sentences (0 = all)")
    parser.add_argument("--docs", type=int, default=300, help="SciFact docs per run (0 = all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",")]

    pairs = load_stsb(resolve_dataset_dir(args.data_dir, "stsb", marker="stsb-test.jsonl"))
    sentences = list(dict.fromkeys(s for p in pairs for s in (p.sentence1, p.sentence2)))
    if args.sentences:
        sentences = sentences[: args.sentences]
    corpus = load_beir(resolve_dataset_dir(args.data_dir, "scifact", marker="corpus.jsonl"))
    docs = corpus.corpus_texts if args.docs == 0 else corpus.corpus_texts[: args.docs]
    fns = _encoders(backends, args.batch_size)
    import torch

    load = os.getloadavg()
    result = {
        "benchmark": "encode_throughput",
        "backends": backends,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "onnx_threads": onnx_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "load_before": [round(x, 2) for x in load],
        "sentences": bench(sentences, fns, args.repeats),
        "docs": bench(docs, fns, args.repeats),
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
