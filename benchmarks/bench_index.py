"""Secure index vs raw hnswlib: recall@10, query throughput, open time (side by side).

For each dataset (SciFact corpus embeddings with SciFact test queries; N random unit
vectors with 1000 random unit queries) the script builds one fedembed collection, then
writes the *same* graph as a plain hnswlib file for the baseline, so both sides search
the identical graph with identical parameters. Prints one JSON object per measurement.

    .venv/bin/python benchmarks/bench_index.py --data-dir ../shared/data --random 100000

- recall@10 against exact (brute-force) search, for both.
- knn_query throughput in process, batch of all queries (both with hnswlib's default
  threads) and a per-query loop (both on the calling thread); medians of --repeats
  interleaved runs; ratio fedembed / hnswlib.
- open time: IndexStore opening the encrypted generation (decrypt + load + table)
  vs ``hnswlib.Index.load_index`` of the plain file (both from the page cache);
  medians of --repeats interleaved runs; ratio. With --cold (root), also both with the
  page cache dropped before each open, in a separate loop before the warm one. And each
  open in a new interpreter (``--fresh-opens``, default --repeats a side), as a service
  start pays it: no earlier open's freed memory to reuse.
- memory per vector: resident memory added by one open / vectors, and bytes on disk /
  vectors (the collection's folder; the plain hnswlib file), for both.

A million vectors take long to build on a small machine: ``--work-dir DIR`` keeps the built
store and plain graph in DIR and reuses them on the next run with the same parameters
(``--build-only`` builds and stops); remove DIR afterwards. Over 200,000 documents,
recall is judged on the first 100 queries (exact search of all 1000 takes minutes).

    .venv/bin/python benchmarks/bench_index.py --skip-scifact --random 1000000 \
        --m-random 16 --efc-random 40 --ef-random 50 --work-dir /tmp/bench-1m --build-only
    .venv/bin/python benchmarks/bench_index.py --skip-scifact --random 1000000 \
        --m-random 16 --efc-random 40 --ef-random 50 --work-dir /tmp/bench-1m --repeats 5 --cold
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hnswlib
import numpy as np

from embedding_core.progress import Progress
from secure_index.index.graph_image import anonymous_buffer, graph_from_buffer
from secure_index.index.hnsw_collection import CollectionSpec, Metric
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks, open_sealed, read_sealed_header

DEFAULT_CACHE = Path("/work/fedembed-cache")
K = 10
RECALL_QUERIES_LARGE = 100


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def exact_top_k(queries: np.ndarray, docs: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((len(queries), k), dtype=np.int64)
    step = max(8, min(256, 50_000_000 // len(docs)))  # at most ~200 MB of scores at once
    for start in range(0, len(queries), step):
        sims = queries[start : start + step] @ docs.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[start : start + step] = np.take_along_axis(part, order, axis=1)
    return out


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def scifact(data_dir: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from embedding_core.cache import EmbeddingCache
    from embedding_core.data import load_beir, resolve_dataset_dir
    from embedding_core.encoder import Encoder
    from embedding_core.evaluation import embed_retrieval

    vectors = embed_retrieval(
        Encoder.load(),
        load_beir(resolve_dataset_dir(data_dir, "scifact", marker="corpus.jsonl"), split="test"),
        cache=EmbeddingCache(cache_dir),
    )
    return vectors.documents.astype(np.float32), vectors.queries.astype(np.float32)


def random_unit(n: int, queries: int, dim: int = 384) -> tuple[np.ndarray, np.ndarray]:
    """``n`` documents and ``queries`` queries, unit length, seed 0.

    Drawn in blocks of 100,000 rows (the same numbers as one draw: the generator's stream
    is sequential), so a million rows never need a 3 GB float64 array.
    """
    rng = np.random.default_rng(0)
    x = np.empty((n + queries, dim), dtype=np.float32)
    for start in range(0, n + queries, 100_000):
        stop = min(start + 100_000, n + queries)
        x[start:stop] = rng.standard_normal((stop - start, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:n], x[n:]


def rss_bytes() -> int:
    """Resident memory of this process (``/proc/self/statm``)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build(
    name: str,
    docs: np.ndarray,
    work: Path,
    *,
    m: int,
    ef_construction: int,
    ef: int,
    reuse: bool,
) -> tuple[KeyFileKeks, Path, Path, float | None]:
    """Build the collection once (through the store) and save its graph as a plain file.

    With ``reuse``, a store, key file and plain graph that an earlier run left in
    ``work`` for the same data and parameters are used as they are (``build_s`` None).
    """
    root = work / f"{name}-store"
    plain = work / f"{name}-plain.bin"
    marker = work / f"{name}-built.json"
    params = {"documents": len(docs), "dim": int(docs.shape[1]), "m": m}
    params |= {"ef_construction": ef_construction, "ef_search": ef}
    if reuse and marker.exists() and json.loads(marker.read_text()) == params:
        return KeyFileKeks.load(work / f"{name}-kek.json"), root, plain, None
    keks = KeyFileKeks.create(work / f"{name}-kek.json")
    spec = CollectionSpec(
        name,
        docs.shape[1],
        metric=Metric.INNER_PRODUCT,
        m=m,
        ef_construction=ef_construction,
        ef_search=ef,
    )
    started = time.perf_counter()
    with IndexStore(root, keks=keks, tenant="bench", background=False) as store:
        store.create_collection(spec)
        with Progress(len(docs), what=f"build {name} index", unit="vectors") as progress:
            for s in range(0, len(docs), 10_000):
                store.upsert(
                    name,
                    [f"d{i}" for i in range(s, min(s + 10_000, len(docs)))],
                    docs[s : s + 10_000],
                    owner="n",
                )
                progress.advance(min(10_000, len(docs) - s))
        store.snapshot(name)
        build_s = time.perf_counter() - started
        coll = store._get(name).collection  # the same graph, saved plain for the baseline
        coll._index.save_index(str(plain))
    marker.write_text(json.dumps(params))
    return keks, root, plain, build_s


def queries_side_by_side(
    name: str,
    docs: np.ndarray,
    queries: np.ndarray,
    *,
    root: Path,
    keks: KeyFileKeks,
    plain: Path,
    ef: int,
    repeats: int,
) -> tuple[dict[str, Any], tuple[list[float], list[float], list[float], list[float]]]:
    """Recall of both sides, then queries/s samples (batch and one by one), interleaved.

    Both indexes are released when this returns (the open timings run without them).
    """
    raw = hnswlib.Index(space="ip", dim=docs.shape[1])
    raw.load_index(str(plain), max_elements=len(docs))
    raw.set_ef(ef)
    # exact search of 1000 queries over a million vectors is minutes here: over 200,000
    # documents, recall is measured on the first RECALL_QUERIES_LARGE queries
    judged = len(queries) if len(docs) <= 200_000 else RECALL_QUERIES_LARGE
    truth = exact_top_k(queries[:judged], docs, K)
    store = IndexStore(root, keks=keks, tenant="bench", background=False)
    ours_hits = store.knn_query(name, queries, K)
    ours_found = [[int(h.doc_id[1:]) for h in row] for row in ours_hits]
    raw_labels, _ = raw.knn_query(queries, k=K)
    result: dict[str, Any] = {
        "recall_queries": judged,
        "recall_at_10_fedembed": round(recall(ours_found[:judged], truth), 4),
        "recall_at_10_hnswlib": round(recall(raw_labels[:judged].tolist(), truth), 4),
    }
    # throughput, interleaved; which side runs first alternates per repeat (ABBA), so
    # neither always inherits the other's cache and thread-pool state
    batch_ours: list[float] = []
    batch_raw: list[float] = []
    loop_ours: list[float] = []
    loop_raw: list[float] = []
    store.knn_query(name, queries, K)  # warm both (page-in, thread pools) before timing
    raw.knn_query(queries, k=K)
    single = queries[: min(300, len(queries))]

    def ours_batch() -> None:
        store.knn_query(name, queries, K)

    def raw_batch() -> None:
        raw.knn_query(queries, k=K)  # hnswlib's default threads, as the store uses for batches

    def ours_loop() -> None:
        for q in single:
            store.knn_query(name, q, K)

    def raw_loop() -> None:
        for q in single:
            raw.knn_query(q, k=K, num_threads=1)

    pairs = (
        ((ours_batch, batch_ours, len(queries)), (raw_batch, batch_raw, len(queries))),
        ((ours_loop, loop_ours, len(single)), (raw_loop, loop_raw, len(single))),
    )
    for repeat in range(repeats):
        for pair in pairs:
            for job, samples, count in pair if repeat % 2 == 0 else pair[::-1]:
                t = time.perf_counter()
                job()
                samples.append(count / (time.perf_counter() - t))
    store.close(snapshot=False)
    return result, (batch_ours, batch_raw, loop_ours, loop_raw)


_FRESH_OPEN = """
import sys, time
side, root, kek, plain, count, dim = sys.argv[1:]
import hnswlib
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
keks = KeyFileKeks.load(kek)
started = time.perf_counter()
if side == "fedembed":
    opened = IndexStore(root, keks=keks, tenant="bench", background=False)
else:
    opened = hnswlib.Index(space="ip", dim=int(dim))
    opened.load_index(plain, max_elements=int(count))
print(time.perf_counter() - started)
"""


def fresh_opens(
    root: Path, kek: Path, plain: Path, count: int, dim: int, repeats: int
) -> dict[str, Any]:
    """Each open in a new interpreter, as a service start pays it; sides alternate (ABBA).

    Only the open is timed (imports and the key file come first, on both sides); both
    read from the page cache (one open of each side first, untimed).
    """
    times: dict[str, list[float]] = {"fedembed": [], "hnswlib": []}
    sides = ["fedembed", "hnswlib"]
    for repeat in range(repeats + 1):
        for side in sides if repeat % 2 == 0 else sides[::-1]:
            args = [side, str(root), str(kek), str(plain), str(count), str(dim)]
            done = subprocess.run(
                [sys.executable, "-c", _FRESH_OPEN, *args],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).resolve().parents[1],
            )
            if repeat:
                times[side].append(float(done.stdout.strip().splitlines()[-1]))
    med = statistics.median
    return {
        "fresh_open_s_fedembed": round(med(times["fedembed"]), 4),
        "fresh_open_s_hnswlib": round(med(times["hnswlib"]), 4),
        "fresh_open_ratio": round(med(times["fedembed"]) / med(times["hnswlib"]), 3),
        "fresh_open_samples": {k: [round(v, 3) for v in t] for k, t in times.items()},
    }


def run(
    name: str,
    docs: np.ndarray,
    queries: np.ndarray,
    *,
    ef: int,
    repeats: int,
    work: Path,
    m: int = 16,
    ef_construction: int = 200,
    cold: bool = False,
    reuse: bool = False,
    fresh: int = 0,
) -> dict[str, Any]:
    keks, root, plain, build_s = build(
        name, docs, work, m=m, ef_construction=ef_construction, ef=ef, reuse=reuse
    )
    result: dict[str, Any] = {
        "dataset": name,
        "documents": len(docs),
        "queries": len(queries),
        "dim": docs.shape[1],
        "m": m,
        "ef_construction": ef_construction,
        "ef_search": ef,
        "build_s": None if build_s is None else round(build_s, 1),
    }
    recalls, (batch_ours, batch_raw, loop_ours, loop_raw) = queries_side_by_side(
        name, docs, queries, root=root, keks=keks, plain=plain, ef=ef, repeats=repeats
    )
    result.update(recalls)
    gc.collect()
    med = statistics.median
    result.update(
        {
            "qps_batch_fedembed": round(med(batch_ours)),
            "qps_batch_hnswlib": round(med(batch_raw)),
            "qps_batch_ratio": round(med(batch_ours) / med(batch_raw), 3),
            "qps_single_fedembed": round(med(loop_ours)),
            "qps_single_hnswlib": round(med(loop_raw)),
            "qps_single_ratio": round(med(loop_ours) / med(loop_raw), 3),
        }
    )
    # open time. Cold opens (page cache dropped before each, root only) run in their own
    # loop first: a drop_caches inside the warm loop would leave one side cold.
    graph = sorted(root.rglob("graph-*.sealed"))[-1]
    context = read_sealed_header(graph).context
    opens_ours: list[float] = []
    opens_graph: list[float] = []
    opens_raw: list[float] = []
    cold_ours: list[float] = []
    cold_raw: list[float] = []

    def open_ours() -> float:
        t = time.perf_counter()
        reopened = IndexStore(root, keks=keks, tenant="bench", background=False)
        elapsed = time.perf_counter() - t
        reopened.close(snapshot=False)
        return elapsed

    def open_graph() -> float:
        t = time.perf_counter()
        with open_sealed(graph, expected=context, keks=keks) as reader:
            image = anonymous_buffer(reader.plaintext_length)
            reader.read_into(memoryview(image))
            g = graph_from_buffer(image)
        elapsed = time.perf_counter() - t
        del g
        image.close()
        return elapsed

    def open_raw() -> float:
        t = time.perf_counter()
        r = hnswlib.Index(space="ip", dim=docs.shape[1])
        r.load_index(str(plain), max_elements=len(docs))
        elapsed = time.perf_counter() - t
        del r
        return elapsed

    for i in range(repeats if cold else 0):  # after a reboot: nothing in the page cache
        for opener, times in (
            ((open_ours, cold_ours), (open_raw, cold_raw))
            if i % 2 == 0
            else ((open_raw, cold_raw), (open_ours, cold_ours))
        ):
            drop_caches()
            times.append(opener())
    # warm: both read from the page cache; the first round only warms it; the order of
    # the sides alternates per repeat (ABBA)
    for i in range(repeats + 1):
        openers = [(open_ours, opens_ours), (open_graph, opens_graph), (open_raw, opens_raw)]
        for opener, times in openers if i % 2 == 0 else openers[::-1]:
            elapsed = opener()
            if i:
                times.append(elapsed)
    result.update(
        {
            "open_s_fedembed": round(med(opens_ours), 4),
            "open_s_hnswlib": round(med(opens_raw), 4),
            "open_ratio": round(med(opens_ours) / med(opens_raw), 3),
            "open_graph_s_fedembed": round(med(opens_graph), 4),
            "open_graph_ratio": round(med(opens_graph) / med(opens_raw), 3),
            **(
                {
                    "cold_open_s_fedembed": round(med(cold_ours), 4),
                    "cold_open_s_hnswlib": round(med(cold_raw), 4),
                    "cold_open_ratio": round(med(cold_ours) / med(cold_raw), 3),
                }
                if cold_ours
                else {}
            ),
            "encrypted_bytes": sum(p.stat().st_size for p in root.rglob("graph-*.sealed")),
            "plain_bytes": plain.stat().st_size,
        }
    )
    if fresh:
        kek = work / f"{name}-kek.json"
        result.update(fresh_opens(root, kek, plain, len(docs), int(docs.shape[1]), fresh))
    result.update(memory_per_vector(name, root, keks, plain, len(docs), docs.shape[1]))
    if not reuse:
        plain.unlink()
    return result


def memory_per_vector(
    name: str, root: Path, keks: KeyFileKeks, plain: Path, count: int, dim: int
) -> dict[str, Any]:
    """Resident memory per vector after an open (RSS delta / count) and bytes on disk."""
    gc.collect()
    before = rss_bytes()
    store = IndexStore(root, keks=keks, tenant="bench", background=False)
    ours = rss_bytes() - before
    store.close(snapshot=False)
    del store
    gc.collect()
    before = rss_bytes()
    raw = hnswlib.Index(space="ip", dim=dim)
    raw.load_index(str(plain), max_elements=count)
    theirs = rss_bytes() - before
    del raw
    on_disk = sum(p.stat().st_size for p in (root / "collections" / name).rglob("*") if p.is_file())
    return {
        "rss_per_vector_fedembed": round(ours / count, 1),
        "rss_per_vector_hnswlib": round(theirs / count, 1),
        "disk_per_vector_fedembed": round(on_disk / count, 1),
        "disk_per_vector_hnswlib": round(plain.stat().st_size / count, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("FEDEMBED_DATA_DIR", "../shared/data"))
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--random", type=int, default=100_000, help="random unit vectors (0: skip)")
    parser.add_argument("--ef", type=int, default=200)
    parser.add_argument("--ef-random", type=int, default=1000)
    parser.add_argument("--m-random", type=int, default=32)
    parser.add_argument("--efc-random", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-scifact", action="store_true")
    parser.add_argument(
        "--cold", action="store_true", help="also time opens with a cold page cache (root)"
    )
    parser.add_argument(
        "--fresh-opens",
        type=int,
        default=None,
        help="opens timed each in a new interpreter, per side (default: --repeats; 0: skip)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep the built random-vector store and plain graph here and reuse them on the "
        "next run with the same parameters (default: a temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build (or find) the random store and stop"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("embedding_core.progress").setLevel(logging.INFO)  # the build's lines
    machine = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "hnswlib": "0.8.0",
    }
    with contextlib.ExitStack() as stack:
        if args.work_dir is not None:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            work = args.work_dir
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-index-")))
        reuse = args.work_dir is not None
        if args.build_only:
            docs, _ = random_unit(args.random, 1000)
            _, _, _, built = build(
                "random",
                docs,
                work,
                m=args.m_random,
                ef_construction=args.efc_random,
                ef=args.ef_random,
                reuse=True,
            )
            print(json.dumps({"documents": args.random, "build_s": built}), flush=True)
            return
        if not args.skip_scifact:
            docs, queries = scifact(args.data_dir, args.cache)
            print(
                json.dumps(
                    {
                        **run(
                            "scifact", docs, queries, ef=args.ef, repeats=args.repeats, work=work
                        ),
                        **machine,
                    }
                ),
                flush=True,
            )
        if args.random:
            docs, queries = random_unit(args.random, 1000)
            print(
                json.dumps(
                    {
                        **run(
                            "random",
                            docs,
                            queries,
                            ef=args.ef_random,
                            repeats=args.repeats,
                            work=work,
                            m=args.m_random,
                            ef_construction=args.efc_random,
                            cold=args.cold,
                            reuse=reuse,
                            fresh=args.repeats if args.fresh_opens is None else args.fresh_opens,
                        ),
                        **machine,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
