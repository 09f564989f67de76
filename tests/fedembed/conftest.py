"""Fixtures for end-to-end federation tests: real SuperLink/SuperNode processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from deployment.flower_processes import ManagedProcess
from embedding_core.cache import EmbeddingCache
from embedding_core.data import load_beir
from embedding_core.data.federated_split import split_non_iid, write_shards
from embedding_core.encoder import Encoder
from fedembed.loopback_consortium import LoopbackConsortium
from federation.node_privacy import NodePrivacy
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision

SUBSET_NAME = "scifact-subset"
NODES = ("node-0", "node-1", "node-2")


def _write_subset(source: Path, target: Path, *, train_queries: int) -> None:
    """A smaller SciFact (all test-cited docs, docs of the first train queries, 150 others)."""
    qrels: dict[str, list[str]] = {}
    for split in ("train", "test"):
        lines = (source / "qrels" / f"{split}.tsv").read_text().splitlines()
        rows = [line.split("\t") for line in lines[1:] if line.strip()]
        if split == "train":
            keep_q = list(dict.fromkeys(r[0] for r in rows))[:train_queries]
            rows = [r for r in rows if r[0] in set(keep_q)]
        qrels[split] = ["\t".join(r) for r in rows]
    cited = {line.split("\t")[1] for rows in qrels.values() for line in rows}
    corpus_lines = (source / "corpus.jsonl").read_text().splitlines()
    keep, others = [], 0
    for line in corpus_lines:
        doc_id = json.loads(line)["_id"]
        if doc_id in cited:
            keep.append(line)
        elif others < 150:
            keep.append(line)
            others += 1
    (target / "qrels").mkdir(parents=True)
    (target / "corpus.jsonl").write_text("\n".join(keep) + "\n")
    (target / "queries.jsonl").write_text((source / "queries.jsonl").read_text())
    for split, rows in qrels.items():
        (target / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n"
        )


@dataclass
class Consortium:
    """A LoopbackConsortium plus the test's data folders."""

    root: Path
    data_root: Path
    kits: Path
    node_dirs: dict[str, Path]
    loopback: LoopbackConsortium

    @property
    def flwr_home(self) -> Path:
        return self.loopback.flwr_home

    @property
    def superlink(self) -> ManagedProcess | None:
        return self.loopback.superlink

    @property
    def nodes(self) -> dict[str, ManagedProcess]:
        return self.loopback.nodes

    def start_node(self, name: str, *, max_epsilon: float = 8.0) -> ManagedProcess:
        return self.loopback.start_node(
            name,
            data_dir=self.node_dirs[name],
            node_privacy=NodePrivacy(max_epsilon=max_epsilon),
        )

    def start_fresh_nodes(self, *, max_epsilon: float = 8.0) -> None:
        """Start every node with an empty privacy ledger (the member folders are shared)."""
        for name in NODES:
            self.ledger_path(name).unlink(missing_ok=True)
            self.start_node(name, max_epsilon=max_epsilon)

    def ledger_path(self, name: str) -> Path:
        return self.node_dirs[name] / STATE_DIR / LEDGER_FILE

    def ledger(self, name: str) -> dict[str, Any]:
        """A node's persisted privacy ledger."""
        loaded: dict[str, Any] = json.loads(self.ledger_path(name).read_text())
        return loaded


@pytest.fixture(scope="session")
def consortium_data(
    tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path, embedding_cache_dir: Path
) -> tuple[Path, dict[str, Path]]:
    """A SciFact subset split non-IID across three member folders."""
    root = tmp_path_factory.mktemp("consortium-data")
    data_root = root / "data"
    _write_subset(shared_data_dir / "scifact", data_root / SUBSET_NAME, train_queries=240)
    train = load_beir(data_root / SUBSET_NAME, split="train", name=SUBSET_NAME)
    doc_vectors = EmbeddingCache(embedding_cache_dir).get_or_encode(
        Encoder.load(), train.corpus_texts
    )
    shards = split_non_iid(train, doc_vectors, num_nodes=len(NODES))
    folders = write_shards(shards, root / "members")
    return data_root, {f.name: f for f in folders}


@pytest.fixture
def consortium(
    tmp_path: Path, consortium_data: tuple[Path, dict[str, Path]], embedding_cache_dir: Path
) -> Iterator[Consortium]:
    """Provisioned kits after the CKKS key ceremony, a TLS SuperLink with SuperNode auth,
    node keys registered."""
    data_root, node_dirs = consortium_data
    kits = tmp_path / "kits"
    provision(kits, node_ids=list(NODES))
    run_ckks_ceremony(kits, key_holder=NODES[0])  # members make and share the CKKS key pair
    env = {
        "FEDEMBED_CACHE_DIR": str(embedding_cache_dir),
        "FEDEMBED_DATA_DIR": str(data_root),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    loopback = LoopbackConsortium(kits=kits, work=tmp_path, env=env)
    loopback.start(list(NODES))
    c = Consortium(tmp_path, data_root, kits, node_dirs, loopback)
    try:
        yield c
    finally:
        loopback.stop()
