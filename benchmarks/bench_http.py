"""The partner query endpoint over loopback HTTP: p50/p99 latency and QPS by concurrency.

Starts a real ``fedembed index serve`` process (gateway + store, encrypted at rest),
uploads SciFact's corpus embeddings through the node API, then runs C concurrent
partner clients (threads, one keep-alive connection each) for --duration seconds per
level, querying with SciFact test-query vectors (``--mode vector``) or claim texts the
gateway embeds (``--mode text``). Client and server share this machine's cores.
Prints one JSON object per level.

    .venv/bin/python benchmarks/bench_http.py --data-dir ../shared/data --levels 1 8 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from index_client.errors import GatewayError
from index_client.gateway_client import GatewayClient
from secure_index.service.local_service import start_index_service

DEFAULT_CACHE = Path("/work/fedembed-cache")
COLLECTION = "scifact"
Query = tuple[str | None, np.ndarray | None]  # (text, vector): exactly one is set


def load(data_dir: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from embedding_core.cache import EmbeddingCache
    from embedding_core.data import load_beir, resolve_dataset_dir
    from embedding_core.encoder import Encoder
    from embedding_core.evaluation import embed_retrieval

    test = load_beir(resolve_dataset_dir(data_dir, "scifact", marker="corpus.jsonl"), split="test")
    vectors = embed_retrieval(Encoder.load(), test, cache=EmbeddingCache(cache_dir))
    texts = [test.queries[q] for q in vectors.query_ids]
    return vectors.documents, vectors.queries, texts


def level(
    url: str, token: str, clients: int, duration: float, queries: list[Query], k: int
) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_at = time.perf_counter() + 0.5
    stop_at = start_at + duration

    def worker(c: int) -> None:
        rng = np.random.default_rng(c)
        with GatewayClient(url, token, timeout_s=30) as client:
            while time.perf_counter() < start_at:
                time.sleep(0.01)
            while (now := time.perf_counter()) < stop_at:
                text, vector = queries[int(rng.integers(len(queries)))]
                try:
                    ok = len(client.query(COLLECTION, text, vector=vector, k=k).hits) == k
                except GatewayError:
                    ok = False
                latencies[c].append(time.perf_counter() - now)
                errors[c] += 0 if ok else 1

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_lat = np.array([x for lat in latencies for x in lat]) * 1000
    return {
        "clients": clients,
        "requests": int(all_lat.size),
        "errors": int(sum(errors)),
        "qps": round(all_lat.size / duration, 1),
        "p50_ms": round(float(np.percentile(all_lat, 50)), 2),
        "p99_ms": round(float(np.percentile(all_lat, 99)), 2),
        "mean_ms": round(float(statistics.fmean(all_lat)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("FEDEMBED_DATA_DIR", "../shared/data"))
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--mode", choices=["vector", "text"], default="vector")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    docs, queries_vectors, texts = load(args.data_dir, args.cache)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        extra = () if args.mode == "text" else ("--no-text-queries",)
        service = start_index_service(
            Path(tmp) / "svc", kek=secrets.token_bytes(32), extra_args=extra
        )
        try:
            with service.admin_client() as admin:
                admin.create_collection(COLLECTION, docs.shape[1])
                node = admin.issue_credential(
                    "node", "node-0", [COLLECTION], rate_per_minute=1_000_000, burst=100_000
                )
                partner = admin.issue_credential(
                    "partner",
                    "bench",
                    [COLLECTION],
                    rate_per_minute=1_000_000,
                    burst=100_000,
                    vector_queries=True,
                    query_budget=1_000_000_000,
                )
            with service.gateway_client(node.token) as gateway:
                for s in range(0, len(docs), 500):
                    batch = range(s, min(s + 500, len(docs)))
                    gateway.upsert_documents(COLLECTION, [f"doc-{i}" for i in batch], docs[batch])
            queries: list[Query] = (
                [(None, q) for q in queries_vectors]
                if args.mode == "vector"
                else [(t, None) for t in texts]
            )
            for clients in args.levels:
                result = level(service.url, partner.token, clients, args.duration, queries, args.k)
                print(
                    json.dumps(
                        {
                            "mode": args.mode,
                            "documents": len(docs),
                            "duration_s": args.duration,
                            **result,
                            "cpus": os.cpu_count(),
                            "machine": platform.machine(),
                        }
                    ),
                    flush=True,
                )
        finally:
            service.stop()


if __name__ == "__main__":
    main()
