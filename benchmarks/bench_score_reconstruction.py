"""Score reconstruction against a real gateway, per collection kind, score release and probes.

Starts ``fedembed index serve`` (one process on loopback: gateway + store) with a fresh
DCPE keyring (beta 1) and CKKS key, uploads a seeded sample of SciFact documents into an
at-rest, a DCPE and a CKKS collection, and for each kind, each score release (exact,
coarse, rank) and each probe kind (vector probes with a vector grant; public-text probes)
issues a partner key and runs :mod:`attacks.score_reconstruction` with up to ``--probes``
probes. Every key keeps the gateway's other defaults (query budget, probe detection);
only the token-bucket rate limit is lifted. Then the partner nDCG@10 of the 300 SciFact
test claims as text over the whole corpus, with the default release and with exact
scores, on one gateway in the same run. Prints JSON.

``--defaults-only`` keeps one row per collection kind: a partner key issued with every
default (its rate limit too), ``--probes`` vector probes and then ``--probes`` text
probes, each asking for the largest ``k`` the key allows (the attacker reads its cap
from the gateway's 403). ``--documents all`` uploads the whole 5,183-document corpus.

    python benchmarks/bench_score_reconstruction.py --data-dir ../shared/data
    python benchmarks/bench_score_reconstruction.py --data-dir ../shared/data \
        --documents all --defaults-only --kinds at-rest dcpe
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from audit.score_reconstruction_evidence import (
    KINDS,
    LIFTED_RATE,
    ProbeSetup,
    attack_collection,
    serve,
    upload,
)
from embedding_core import EmbeddingCache, Encoder
from embedding_core.data import load_beir, load_stsb
from embedding_core.evaluation.metrics import mean_metrics
from embedding_core.evaluation.retrieval import embed_retrieval

RELEASES = ("exact", "coarse", "rank")


def _documents(value: str) -> int | None:
    """``all`` (None: the whole corpus) or a positive count."""
    if value == "all":
        return None
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', got {value!r}")
    return int(value)


def _row(kind: str, release: str, probe: str, report: Any) -> dict[str, Any]:
    m = report.metrics
    return {
        "collection": kind, "release": release, "probes": probe,
        "documents": int(m["documents"]), "top_k": report.details["top_k"],
        "attempted": int(m["probes_attempted"]), "answered": int(m["probes_answered"]),
        "answered_by_kind": report.details["answered_by_kind"],
        "mean_cosine": round(m["mean_cosine"], 4),
        "share_above_0_9": round(m["share_above_0_9"], 4),
        "baseline_cosine": round(m["baseline_cosine"], 4),
        "refusals": report.details["refusals"][:2],
        "rate_limit": report.details["rate_limit"],
        "seconds": round(report.seconds, 1),
    }  # fmt: skip


def _public(data_dir: Path, encoder: Encoder, cache: EmbeddingCache) -> tuple[list[str], Any]:
    texts = sorted(
        {
            s.strip()
            for split in ("train", "dev", "test")
            for pair in load_stsb(data_dir / "stsb", split=split)
            for s in (pair.sentence1, pair.sentence2)
        }
    )
    with open(data_dir / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        texts += [row["text"] for row in csv.DictReader(handle)]
    return texts, cache.get_or_encode(encoder, texts, show_progress=False)


def _ndcg(service: Any, data_dir: Path, encoder: Encoder, cache: EmbeddingCache) -> dict[str, Any]:
    """Partner nDCG@10 of the SciFact test claims (text) with the default and exact release."""
    test = load_beir(data_dir / "scifact", split="test")
    vectors = embed_retrieval(encoder, test, cache=cache).documents
    ids = [f"d{i}" for i in range(len(test.corpus_ids))]
    back = dict(zip(ids, test.corpus_ids, strict=True))
    lifted = {"rate_per_minute": LIFTED_RATE, "burst": LIFTED_RATE}
    with service.admin_client() as admin:
        admin.create_collection("ndcg", vectors.shape[1], metric="cosine", protection="at-rest")
        node = admin.issue_credential("node", "bench-node", ["ndcg"], **lifted)
        lifted = {"rate_per_minute": LIFTED_RATE, "burst": LIFTED_RATE}
        keys = {
            "default (rank)": admin.issue_credential(
                "partner", "bench-default", ["ndcg"], **lifted
            ),
            "exact": admin.issue_credential(
                "partner", "bench-exact", ["ndcg"], score_release="exact", **lifted
            ),
        }
    with service.gateway_client(node.token, timeout_s=300.0) as gateway:
        for start in range(0, len(ids), 256):
            gateway.upsert_documents("ndcg", ids[start : start + 256], vectors[start : start + 256])
    out: dict[str, Any] = {}
    for label, key in keys.items():
        with service.gateway_client(key.token, timeout_s=300.0) as client:
            rankings = {
                qid: [back[d] for d in client.query("ndcg", test.queries[qid], k=10).doc_ids]
                for qid in test.qrels
            }
        out[label] = round(100 * mean_metrics(rankings, test.qrels)["ndcg@10"], 2)
    out["queries"] = len(test.qrels)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument(
        "--documents", type=_documents, default=300, help="a count, or 'all' (5,183)"
    )
    parser.add_argument(
        "--defaults-only",
        action="store_true",
        help="one default key per kind (vector, then text probes; rate limit not lifted)",
    )
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--skip-ndcg", action="store_true", help="no nDCG@10 rows")
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--ckks-probes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(".cache/embeddings"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    encoder, cache = Encoder.load(), EmbeddingCache(args.cache)
    texts, public = _public(args.data_dir, encoder, cache)
    test = load_beir(args.data_dir / "scifact", split="test")
    corpus = embed_retrieval(encoder, test, cache=cache).documents
    size = len(corpus) if args.documents is None else min(args.documents, len(corpus))
    pick = np.sort(np.random.default_rng(args.seed + 11).choice(len(corpus), size, replace=False))
    setup = ProbeSetup(
        doc_ids=[f"doc-{i}" for i in pick],
        documents=np.asarray(corpus[pick], dtype=np.float32),
        public_texts=texts,
        public_vectors=np.asarray(public, dtype=np.float32),
        probes={},
        seed=args.seed,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-score-reconstruction-") as tmp:
        service, keyring = serve(Path(tmp), None, None, corpus.shape[1], None, None)
        try:
            names = upload(service, setup, keyring, args.kinds)
            for kind in args.kinds:
                count = args.ckks_probes if kind == "ckks" else args.probes
                if args.defaults_only:
                    report = attack_collection(
                        service, setup, kind, names[kind], count, budget=2 * count,
                        lift_rate=False,
                    )  # fmt: skip
                    rows.append(_row(kind, "rank (default)", "vector, then text", report))
                    print(json.dumps(rows[-1]), flush=True)
                    continue
                for release in RELEASES:
                    for probe in ("vector", "text"):
                        grant: dict[str, Any] = {"score_release": release}
                        if probe == "vector":
                            grant["vector_queries"] = True
                        report = attack_collection(
                            service, setup, kind, names[kind], count, probe_kinds=(probe,),
                            grant=grant,
                        )  # fmt: skip
                        rows.append(_row(kind, release, probe, report))
                        print(json.dumps(rows[-1]), flush=True)
            ndcg = {} if args.skip_ndcg else _ndcg(service, args.data_dir, encoder, cache)
        finally:
            service.stop()
    print(json.dumps({"documents": size, "probes": args.probes,
                      "defaults_only": args.defaults_only,
                      "ckks_probes": args.ckks_probes, "rows": rows, "ndcg10": ndcg,
                      "seconds": round(time.perf_counter() - started, 1)}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
