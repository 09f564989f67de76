"""The main job, ``fedembed demo``.

Today: embed STS-B and SciFact with the shared encoder and evaluate them, reproducing
the published all-MiniLM-L6-v2 numbers. Later issues grow it into the whole
federation, index, queries, audit and report.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from embedding_core.cache import EmbeddingCache
from embedding_core.data import load_beir, load_stsb, resolve_dataset_dir
from embedding_core.encoder import Encoder
from embedding_core.evaluation import evaluate_retrieval, evaluate_sts

__all__ = ["PUBLISHED", "demo"]

logger = logging.getLogger(__name__)

# MTEB's published all-MiniLM-L6-v2 scores (fractions).
PUBLISHED = {"stsb_spearman": 0.8203, "scifact_ndcg@10": 0.6451}
TOLERANCE = 0.005


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Datasets folder (default $FEDEMBED_DATA_DIR)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write results.json.")] = Path(
        "out/demo"
    ),
    model: Annotated[Path | None, typer.Option("--model", help="Local model folder.")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Embedding cache folder.")
    ] = None,
) -> None:
    """Run the main job: embed and evaluate STS-B and SciFact, print and save the numbers."""
    started = time.perf_counter()
    encoder = Encoder.load(model)
    cache = EmbeddingCache(cache_dir)
    pairs = load_stsb(resolve_dataset_dir(data_dir, "stsb", marker="stsb-test.jsonl"))
    sts = evaluate_sts(encoder, pairs, cache=cache)
    scifact = load_beir(resolve_dataset_dir(data_dir, "scifact", marker="corpus.jsonl"))
    beir = evaluate_retrieval(encoder, scifact, cache=cache, show_progress=True)
    rows = [
        ("STS-B test Spearman (cosine)", sts["spearman"], PUBLISHED["stsb_spearman"]),
        ("SciFact test nDCG@10", beir["ndcg@10"], PUBLISHED["scifact_ndcg@10"]),
        ("SciFact test recall@100", beir["recall@100"], None),
        ("SciFact test MRR@10", beir["mrr@10"], None),
    ]
    typer.echo(f"\nfedembed demo: {encoder.model_id}")
    typer.echo(f"{'metric':<32}{'ours':>8}{'published':>11}{'within 0.5':>12}")
    for name, ours, ref in rows:
        ref_s = f"{100 * ref:.2f}" if ref is not None else "-"
        ok = "-" if ref is None else ("yes" if abs(ours - ref) <= TOLERANCE else "NO")
        typer.echo(f"{name:<32}{100 * ours:>8.2f}{ref_s:>11}{ok:>12}")
    result = {
        "model": encoder.model_id,
        "model_fingerprint": encoder.fingerprint,
        "stsb": sts,
        "scifact": beir,
        "published": PUBLISHED,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(f"\nresults written to {out / 'results.json'}")
    typer.echo(json.dumps({"stsb_spearman": sts["spearman"], **beir}))
