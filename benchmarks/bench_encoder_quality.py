"""Quality per encoder backend: STS-B test Spearman, SciFact nDCG@10, cosine to torch fp32.

Every backend encodes the same texts in one process (no cache): the STS-B test pairs
and SciFact's full corpus and test queries. Prints one JSON object with, per backend,
the Spearman and nDCG@10 (as fractions), their change against torch in points, and
the cosine of its vectors to torch's (mean, 1st percentile, min).

    .venv/bin/python benchmarks/bench_encoder_quality.py --data-dir ../shared/data \
        [--backends torch,onnx,onnx-int8] [--docs 0]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from numpy.typing import NDArray

from embedding_core.data import load_beir, load_stsb, resolve_dataset_dir
from embedding_core.encoder import ENCODER_BACKENDS, Encoder, check_backend
from embedding_core.evaluation import RetrievalVectors, evaluate_sts, score_retrieval


def _cosine_summary(a: NDArray[np.float32], b: NDArray[np.float32]) -> dict[str, float]:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "mean": round(float(cos.mean()), 5),
        "p01": round(float(np.percentile(cos, 1)), 5),
        "min": round(float(cos.min()), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--backends", default=",".join(ENCODER_BACKENDS))
    parser.add_argument("--docs", type=int, default=0, help="SciFact docs (0 = all 5,183)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    backends = [check_backend(b.strip()) for b in args.backends.split(",")]

    pairs = load_stsb(resolve_dataset_dir(args.data_dir, "stsb", marker="stsb-test.jsonl"))
    scifact = load_beir(resolve_dataset_dir(args.data_dir, "scifact", marker="corpus.jsonl"))
    docs = scifact.corpus_texts if args.docs == 0 else scifact.corpus_texts[: args.docs]
    query_ids = [q for q in scifact.qrels if q in scifact.queries]
    queries = [scifact.queries[q] for q in query_ids]
    sts_texts = [p.sentence1 for p in pairs] + [p.sentence2 for p in pairs]

    out: dict[str, dict[str, object]] = {}
    ref_sts = ref_docs = np.zeros((0, 0), dtype=np.float32)
    ref_rho, ref_ndcg = 0.0, 0.0
    for backend in backends:
        encoder = Encoder.load(backend=backend)
        encoder.prepare()
        started = time.perf_counter()
        sts = evaluate_sts(encoder, pairs, batch_size=args.batch_size, show_progress=False)
        sts_vectors = encoder.encode(sts_texts, batch_size=args.batch_size, show_progress=False)
        doc_vectors = encoder.encode(docs, batch_size=args.batch_size, what=f"{backend} docs")
        query_vectors = encoder.encode(queries, batch_size=args.batch_size, show_progress=False)
        if args.docs == 0:
            vectors = RetrievalVectors(query_ids, query_vectors, doc_vectors)
            ndcg: float | None = score_retrieval(vectors, scifact)["ndcg@10"]
        else:
            ndcg = None
        row: dict[str, object] = {
            "sts_spearman": round(sts["spearman"], 5),
            "scifact_ndcg@10": None if ndcg is None else round(ndcg, 5),
            "seconds": round(time.perf_counter() - started, 1),
        }
        if backend == backends[0]:
            ref_sts, ref_docs, ref_rho, ref_ndcg = (
                sts_vectors,
                doc_vectors,
                sts["spearman"],
                ndcg or 0.0,
            )
        else:
            row["sts_points_vs_" + backends[0]] = round(100 * (sts["spearman"] - ref_rho), 3)
            if ndcg is not None:
                row["ndcg_points_vs_" + backends[0]] = round(100 * (ndcg - ref_ndcg), 3)
            row["cosine_sts"] = _cosine_summary(sts_vectors, ref_sts)
            row["cosine_docs"] = _cosine_summary(doc_vectors, ref_docs)
        out[backend] = row
        print(json.dumps({backend: row}), flush=True)
    print(json.dumps({"benchmark": "encoder_quality", "docs": len(docs), "backends": out}))


if __name__ == "__main__":
    main()
