"""SciFact search under CKKS encryption vs plaintext exhaustive search and hnswlib.

The gateway's key encrypts the 300 SciFact test queries; a node's public context encrypts
the 5,183 corpus vectors (all-MiniLM-L6-v2, unit norm) into blocks; the store scores every
query against every block without a decrypting key; the gateway decrypts and ranks.
Compared in the same run, on the same vectors: plaintext exhaustive inner-product search
(numpy, one query at a time: the baseline this replaces, same ranking) and hnswlib
(space "ip", M=16, ef_construction=200, ef=200: the index's usual approximate path).
Reports nDCG@10 of each, the largest score error, per-query latency medians and their
ratios, node encryption time, and bytes stored per document. Prints JSON lines.

    nice -n 10 .venv/bin/python benchmarks/bench_ckks_search.py [--queries 300] [--threads 1]
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

import hnswlib
import numpy as np
from numpy.typing import NDArray

from crypto.ckks_search import CkksDocumentEncryptor, CkksInnerProductScorer
from crypto.ckks_search_key import CkksSearchKey
from embedding_core import EmbeddingCache, Encoder
from embedding_core.data import BeirDataset, load_beir, resolve_dataset_dir
from embedding_core.evaluation.metrics import mean_metrics
from embedding_core.evaluation.retrieval import RetrievalVectors, embed_retrieval

DEFAULT_DATA = Path("/work/shared/data")
DEFAULT_CACHE = Path("/work/fedembed-cache")
DEPTH = 100
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF = 16, 200, 200
NDCG = "ndcg@10"
FLOAT32_BYTES = 4


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def ndcg(ranked: NDArray[np.int64], vectors: RetrievalVectors, dataset: BeirDataset) -> float:
    rankings = {
        qid: [dataset.corpus_ids[j] for j in row]
        for qid, row in zip(vectors.query_ids, ranked, strict=True)
    }
    qrels = {qid: dataset.qrels[qid] for qid in rankings}
    return mean_metrics(rankings, qrels)[NDCG]


def top(scores: NDArray[np.float64]) -> NDArray[np.int64]:
    return np.argsort(-scores, kind="stable")[:DEPTH].astype(np.int64)


def median_ms(values: list[float]) -> float:
    return round(1000.0 * statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--queries", type=int, default=300, help="test queries (<= 300)")
    parser.add_argument("--threads", type=int, default=1, help="hnswlib threads")
    args = parser.parse_args()

    emit({"event": "machine", "python": platform.python_version(), "cpus": os.cpu_count()})
    dataset = load_beir(
        resolve_dataset_dir(args.data_dir, "scifact", marker="corpus.jsonl"), split="test"
    )
    vectors = embed_retrieval(Encoder.load(), dataset, cache=EmbeddingCache(args.cache))
    n = min(args.queries, len(vectors.query_ids))
    vectors = RetrievalVectors(
        query_ids=vectors.query_ids[:n], queries=vectors.queries[:n], documents=vectors.documents
    )
    docs = vectors.documents.astype(np.float64)
    dimension = docs.shape[1]

    started = time.perf_counter()
    key = CkksSearchKey.generate(dimension=dimension)
    keygen_s = time.perf_counter() - started
    public, evaluation = key.public_context(), key.evaluation_context()
    encryptor = CkksDocumentEncryptor(public, dimension=dimension)
    started = time.perf_counter()
    blocks = encryptor.encrypt(docs)
    encrypt_s = time.perf_counter() - started
    scorer = CkksInnerProductScorer(evaluation, dimension=dimension)
    for block in blocks:
        scorer.add_block(block)

    index = hnswlib.Index(space="ip", dim=dimension)
    index.init_index(max_elements=len(docs), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
    index.set_num_threads(args.threads)
    index.add_items(vectors.documents.astype(np.float32), np.arange(len(docs)))
    index.set_ef(HNSW_EF)

    times: dict[str, list[float]] = {"plaintext": [], "hnsw": [], "ckks": [], "ckks_store": []}
    ranked: dict[str, list[NDArray[np.int64]]] = {"plaintext": [], "hnsw": [], "ckks": []}
    max_error = 0.0
    for i, q in enumerate(vectors.queries.astype(np.float64)):
        # ABBA-style rotation of the order, so no method always runs on a warm cache
        order = ["plaintext", "hnsw", "ckks"] if i % 2 == 0 else ["ckks", "hnsw", "plaintext"]
        for method in order:
            started = time.perf_counter()
            if method == "plaintext":
                scores = docs @ q
                ranked[method].append(top(scores))
                plain_scores = scores
            elif method == "hnsw":
                labels, _ = index.knn_query(q.astype(np.float32)[None, :], k=DEPTH)
                ranked[method].append(np.asarray(labels[0], dtype=np.int64))
            else:
                query = key.encrypt_query(q)
                store_started = time.perf_counter()
                answer = scorer.score(query)
                times["ckks_store"].append(time.perf_counter() - store_started)
                enc_scores = key.decrypt_scores(answer, scorer.counts)
                ranked[method].append(top(enc_scores))
            times[method].append(time.perf_counter() - started)
        max_error = max(max_error, float(np.abs(enc_scores - plain_scores).max()))
    result = {m: round(ndcg(np.vstack(r), vectors, dataset), 4) for m, r in ranked.items()}
    same_top10 = float(
        np.mean(
            [
                list(a[:10]) == list(b[:10])
                for a, b in zip(ranked["ckks"], ranked["plaintext"], strict=True)
            ]
        )
    )
    stored = sum(block.nbytes for block in blocks)
    plain_ms = median_ms(times["plaintext"])
    emit(
        {
            "event": "ckks_search",
            "docs": len(docs),
            "queries": n,
            "blocks": len(blocks),
            "ndcg@10": result,
            "max_score_error": max_error,
            "same_top10_share": same_top10,
            "median_ms_per_query": {m: median_ms(t) for m, t in times.items()},
            "ratio_ckks_to_plaintext": round(median_ms(times["ckks"]) / plain_ms, 1),
            "ratio_ckks_to_hnsw": round(median_ms(times["ckks"]) / median_ms(times["hnsw"]), 1),
            "keygen_s": round(keygen_s, 3),
            "node_encrypt_s": round(encrypt_s, 2),
            "node_encrypt_docs_per_s": round(len(docs) / encrypt_s),
            "stored_bytes_per_doc": round(stored / len(docs)),
            "plaintext_bytes_per_doc": dimension * FLOAT32_BYTES,
            "public_context_bytes": len(public),
            "evaluation_context_bytes": len(evaluation),
            "query_ciphertext_bytes": len(key.encrypt_query(vectors.queries[0])),
            "answer_bytes": sum(len(a) for a in scorer.score(key.encrypt_query(docs[0]))),
        }
    )


if __name__ == "__main__":
    main()
