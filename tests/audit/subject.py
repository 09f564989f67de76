"""What a consortium hands its auditor: the released adapter, its keys, its index, members.

Every piece is real and as the product writes it: an adapter saved with a federation-style
privacy ledger in its metadata, the consortium's DCPE keyring, the gateway's CKKS search
key, an index data folder (sealed snapshot, WAL, audit log) and member folders that own
alternate SciFact documents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
from crypto.dcpe_keys import DcpeKeyring
from embedding_core import Encoder
from embedding_core.adapter import Adapter
from secure_index.index.hnsw_collection import CollectionSpec
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog
from secure_index.service.settings import audit_path

__all__ = ["LEDGER", "AuditSubject", "write_subject"]

LEDGER = {"node-a": 7.95, "node-b": 8.0}  # epsilon each node spent, as the ledger records
MEMBER_DOCUMENTS = 400  # the first SciFact documents, shared out between two members


@dataclass(frozen=True)
class AuditSubject:
    """The files of one audited deployment."""

    adapter: Path
    dcpe_keyring: Path
    ckks_key: Path
    index: Path
    members: Path


def _index(data: Path, keks_file: Path) -> Path:
    """An index data dir as the service leaves it: sealed snapshot, WAL, audit log."""
    keks = KeyFileKeks.create(keks_file)
    store = IndexStore(data / "store", keks=keks, tenant="consortium", background=False)
    vectors = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    store.create_collection(CollectionSpec("docs", 8))
    store.upsert("docs", ["a", "b", "c", "d"], vectors, owner="node-a")
    store.snapshot("docs")
    store.close(snapshot=False)
    with AuditLog(audit_path(data), keks=keks) as log:
        log.append(
            actor="p1", role="partner", action="query", collection="docs", decision="allow",
            detail={"k": 4},
        )  # fmt: skip
    return data


def _members(folder: Path, data: Path) -> Path:
    """Two member folders owning alternate SciFact documents (ids only matter)."""
    with open(data / "scifact" / "corpus.jsonl", encoding="utf-8") as handle:
        ids = [json.loads(line)["_id"] for line in islice(handle, MEMBER_DOCUMENTS)]
    for node in range(2):
        (folder / f"node-{node}").mkdir(parents=True)
        lines = [json.dumps({"id": i, "text": "-"}) for i in ids[node::2]]
        (folder / f"node-{node}" / "documents.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def write_subject(work: Path, data: Path, encoder: Encoder) -> AuditSubject:
    """Write a released adapter with its ledger, the keys, an index and members under ``work``."""
    adapter = Adapter(encoder.dimension, side="query", seed=0)
    adapter.save(
        work / "adapter",
        base_model_id=encoder.model_id,
        base_model_fingerprint=encoder.fingerprint,
        metadata={
            "target_epsilon": 8.0,
            "target_delta": 1e-5,
            "rounds": 5,
            "aggregation": "ckks",
            "per_node_epsilon": LEDGER,
        },
    )
    DcpeKeyring.create(work / "dcpe_keyring.json", tenant="consortium", beta=1.0)
    save_ckks_key(CkksSearchKey.generate(dimension=encoder.dimension), work / "ckks_search.key")
    return AuditSubject(
        adapter=work / "adapter",
        dcpe_keyring=work / "dcpe_keyring.json",
        ckks_key=work / "ckks_search.key",
        index=_index(work / "index", work / "kek.json"),
        members=_members(work / "members", data),
    )
