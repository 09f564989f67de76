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

import httpx
import numpy as np

from secure_index.service.local_service import start_index_service

DEFAULT_CACHE = Path("/work/fedembed-cache")
COLLECTION = "scifact"


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
    url: str, token: str, clients: int, duration: float, bodies: list[dict[str, Any]]
) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_at = time.perf_counter() + 0.5
    stop_at = start_at + duration

    def worker(c: int) -> None:
        rng = np.random.default_rng(c)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            while time.perf_counter() < start_at:
                time.sleep(0.01)
            while (now := time.perf_counter()) < stop_at:
                body = bodies[int(rng.integers(len(bodies)))]
                try:
                    r = client.post(f"/v1/collections/{COLLECTION}/query", json=body)
                    ok = r.status_code == 200 and len(r.json()["results"]) == body["k"]
                except httpx.HTTPError:
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
    docs, queries, texts = load(args.data_dir, args.cache)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        extra = () if args.mode == "text" else ("--no-text-queries",)
        service = start_index_service(
            Path(tmp) / "svc", kek=secrets.token_bytes(32), extra_args=extra
        )
        try:
            with service.admin() as admin:
                admin.post(
                    "/v1/admin/collections", json={"name": COLLECTION, "dimension": docs.shape[1]}
                ).raise_for_status()
                node = admin.post(
                    "/v1/admin/credentials",
                    json={
                        "role": "node",
                        "name": "node-0",
                        "scopes": [COLLECTION],
                        "rate_per_minute": 1_000_000,
                        "burst": 100_000,
                    },
                ).json()
                partner = admin.post(
                    "/v1/admin/credentials",
                    json={
                        "role": "partner",
                        "name": "bench",
                        "scopes": [COLLECTION],
                        "rate_per_minute": 1_000_000,
                        "burst": 100_000,
                    },
                ).json()
            with service.client(node["token"]) as c:
                for s in range(0, len(docs), 500):
                    items = [
                        {"id": f"doc-{i}", "vector": docs[i].tolist()}
                        for i in range(s, min(s + 500, len(docs)))
                    ]
                    c.put(
                        f"/v1/collections/{COLLECTION}/documents", json={"items": items}
                    ).raise_for_status()
            if args.mode == "vector":
                bodies = [{"vector": q.tolist(), "k": args.k} for q in queries]
            else:
                bodies = [{"text": t, "k": args.k} for t in texts]
            for clients in args.levels:
                result = level(service.url, partner["token"], clients, args.duration, bodies)
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
