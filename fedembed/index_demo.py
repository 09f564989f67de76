"""The main job's index part: members upload, a partner searches, the audit log verifies.

Starts a real ``fedembed index serve`` (gateway + encrypted store) on loopback with the
federation's released query adapter, creates an at-rest collection, a DCPE collection
and a CKKS collection, lets every member node upload its own documents with its own key
(DCPE vectors encrypted on the node with the tenant keyring from its kit; CKKS blocks
encrypted on the node with the gateway's public context, scored by the store without a
decrypting key), then a partner sends every SciFact test claim as text. Result ids are
mapped back to SciFact ids only here, by the evaluator, to score nDCG@10 of what partners
actually receive.
"""

from __future__ import annotations

import contextlib
import logging
import random
import statistics
import time
from pathlib import Path
from typing import Any

from client_node.index_upload import opaque_id, upload_documents
from client_node.node_data import load_node_data
from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
from crypto.dcpe_keys import DcpeKeyring
from embedding_core.data import BeirDataset
from embedding_core.encoder import Encoder
from embedding_core.evaluation.metrics import mean_metrics
from embedding_core.progress import track
from embedding_core.time_share import TimeShare
from index_client.errors import ConflictError
from kits.layout import CKKS_SEARCH_KEY, DCPE_KEYRING
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import verify_audit_log
from secure_index.service.local_service import start_index_service
from secure_index.service.settings import audit_path

__all__ = ["run_index_demo"]

logger = logging.getLogger(__name__)


AT_REST, DCPE, CKKS = "scifact", "scifact-dcpe", "scifact-ckks"
CKKS_CLAIMS_FLOOR = 20  # claims the CKKS collection always gets under a time share
COLLECTIONS = (AT_REST, DCPE, CKKS)
DEMO_DCPE_BETA = 1.0
K = 10


def _keyring(kits: Path | None, work: Path) -> Path:
    """The tenant DCPE keyring from the provisioned kits, else a fresh one."""
    if kits is not None and (kits / "gateway" / DCPE_KEYRING).exists():
        return kits / "gateway" / DCPE_KEYRING
    path = work / DCPE_KEYRING
    if not path.exists():
        DcpeKeyring.create(path, tenant="demo", beta=DEMO_DCPE_BETA)
    return path


def _ckks_key(kits: Path | None, work: Path, dimension: int) -> Path:
    """The gateway's CKKS search key from the provisioned kits, else a fresh one."""
    candidate = kits / "gateway" / CKKS_SEARCH_KEY if kits else None
    if candidate is not None and candidate.exists():
        return candidate
    path = work / CKKS_SEARCH_KEY
    if not path.exists():
        save_ckks_key(CkksSearchKey.generate(dimension=dimension), path)
    return path


def run_index_demo(
    *,
    out: Path,
    members: dict[str, Path],
    test: BeirDataset,
    encoder: Encoder,
    adapter: Path | None,
    kits: Path | None = None,
    model: Path | None = None,
    ckks_claims: int | None = None,
    ckks_seconds: float | None = None,
) -> dict[str, Any]:
    """Serve, upload, query over HTTP; returns the rows for the demo table.

    ``ckks_claims`` sends only a seeded sample of that many test claims to the CKKS
    collection (each of its queries scores every block under encryption); its row then
    also states the at-rest collection's nDCG@10 on the same claims. ``None``: all.
    ``ckks_seconds`` sizes that sample to the machine: claims of the seeded order go while
    they fit in that time (at least ``CKKS_CLAIMS_FLOOR``, at most ``ckks_claims``).
    """
    work = out / "index"
    work.mkdir(parents=True, exist_ok=True)
    kek_file = work / "kek.json"
    if not kek_file.exists():
        KeyFileKeks.create(kek_file)
    keyring = _keyring(kits, work)
    ckks_key = _ckks_key(kits, work, encoder.dimension)
    args = ["--key-file", str(kek_file), "--dcpe-key-file", str(keyring),
            "--ckks-key-file", str(ckks_key)]  # fmt: skip
    if adapter is not None:
        args += ["--adapter", str(adapter)]
    if model is not None:
        args += ["--model", str(model)]
    args += ["--encoder-backend", encoder.backend]  # text queries in the uploads' space
    service = start_index_service(work / "service", extra_args=tuple(args))
    rows: list[dict[str, Any]] = []
    try:
        with service.admin_client() as admin:
            for name, protection, metric in ((AT_REST, "at-rest", "cosine"), (DCPE, "dcpe", "l2")):
                with contextlib.suppress(ConflictError):  # a re-run keeps the collection
                    admin.create_collection(
                        name, encoder.dimension, metric=metric, protection=protection
                    )
            with contextlib.suppress(ConflictError):
                admin.create_ckks_collection(CKKS)
            # text queries, rank release (ranks are all nDCG needs), one budget unit per
            # test query and collection
            evaluated = sum(1 for qid in test.queries if qid in test.qrels)
            partner = admin.issue_credential(
                "partner",
                "demo-partner",
                COLLECTIONS,
                rate_per_minute=100_000,
                burst=10_000,
                score_release="rank",
                query_budget=evaluated * len(COLLECTIONS),
            )
            back: dict[str, str] = {}
            uploads = []
            for node_id, node_dir in members.items():
                node = admin.issue_credential(
                    "node", node_id, COLLECTIONS, rate_per_minute=100_000, burst=10_000
                )
                for collection in COLLECTIONS:
                    report = upload_documents(
                        node_dir, node_id=node_id, gateway_url=service.url, token=node.token,
                        collection=collection, encoder=encoder, dcpe_key_file=keyring,
                    )  # fmt: skip
                    uploads.append(report.__dict__)
                for doc in load_node_data(node_dir).documents:
                    back[opaque_id(node_id, doc.id)] = doc.id
        beta = DcpeKeyring.load(keyring).current().beta
        labels = {
            AT_REST: "encrypted at rest",
            DCPE: f"DCPE beta={beta:g}",
            CKKS: "CKKS search",
        }
        judged = [qid for qid in test.queries if qid in test.qrels]
        shuffled = random.Random(0).sample(judged, len(judged))  # the CKKS sample's order
        sample = shuffled[: len(judged) if ckks_claims is None else ckks_claims]
        answered: dict[str, dict[str, list[str]]] = {}
        with service.gateway_client(partner.token, timeout_s=120.0) as client:
            for collection in COLLECTIONS:
                rankings: dict[str, list[str]] = {}
                latencies = []
                claims = judged if collection != CKKS else sample
                share = None
                if collection == CKKS and ckks_seconds is not None:
                    share = TimeShare(ckks_seconds, floor=min(CKKS_CLAIMS_FLOOR, len(sample)))
                for qid in track(claims, what=f"partner queries, {collection}", unit="claims"):
                    if share is not None and not share.more(len(rankings)):
                        break
                    text = test.queries[qid]
                    started = time.perf_counter()
                    result = client.query(collection, text, k=K)
                    latencies.append(time.perf_counter() - started)
                    rankings[qid] = [back[doc_id] for doc_id in result.doc_ids]
                answered[collection] = rankings
                qrels = {q: test.qrels[q] for q in rankings}
                metrics = mean_metrics(rankings, qrels)
                row: dict[str, Any] = {
                    "setting": f"index over HTTP, {labels[collection]}",
                    "collection": collection,
                    "ndcg@10": metrics["ndcg@10"],
                    "queries": len(rankings),
                    "p50_ms": round(1000 * statistics.median(latencies), 1),
                }
                if len(rankings) < len(judged):
                    same = {q: answered[AT_REST][q] for q in rankings}
                    row["setting"] += f" ({len(rankings)} of {len(judged)} claims)"
                    row["at_rest_same_claims_ndcg@10"] = mean_metrics(same, qrels)["ndcg@10"]
                rows.append(row)
        audit = verify_audit_log(audit_path(service.data_dir))
    finally:
        service.stop()
    return {
        "rows": rows,
        "uploads": uploads,
        "audit_ok": audit.ok,
        "audit_entries": audit.entries,
        "audit_head": audit.head_hash,
        "service_dir": str(service.data_dir),
    }
