"""Non-IID split of a BEIR training set across federation members.

Simulates a consortium: the corpus is clustered by topic (spherical k-means on the
frozen encoder's document vectors), topic clusters are dealt to members so their
document counts stay balanced, and every training (query, relevant document) pair
goes to the member that owns the document. Test queries stay with the evaluator.

Each member folder gets ``documents.jsonl`` (``id``, ``text``) and
``interactions.jsonl`` (``query_id``, ``query``, ``doc_id``): the on-premise layout
``client_node`` reads.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedding_core.data.beir import BeirDataset

__all__ = [
    "DOCUMENTS_FILE",
    "INTERACTIONS_FILE",
    "NodeShard",
    "spherical_kmeans",
    "split_iid",
    "split_non_iid",
    "write_shards",
]

logger = logging.getLogger(__name__)

DOCUMENTS_FILE = "documents.jsonl"
INTERACTIONS_FILE = "interactions.jsonl"
CLUSTERS_PER_NODE = 4
_KMEANS_ITERATIONS = 25


@dataclass(frozen=True)
class NodeShard:
    """One member's share: its documents and its (query, relevant document) pairs."""

    node_id: str
    doc_ids: list[str]
    doc_texts: list[str]
    interactions: list[tuple[str, str, str]]  # (query_id, query_text, doc_id)


def spherical_kmeans(
    vectors: NDArray[np.float32], k: int, *, seed: int = 0, iterations: int = _KMEANS_ITERATIONS
) -> NDArray[np.int64]:
    """Cluster unit vectors by cosine similarity (Dhillon & Modha, 2001); returns labels."""
    if not 1 <= k <= vectors.shape[0]:
        raise ValueError(f"k must be in [1, {vectors.shape[0]}], got {k}")
    rng = np.random.default_rng(seed)
    centres = vectors[rng.choice(vectors.shape[0], size=k, replace=False)].copy()
    labels = np.zeros(vectors.shape[0], dtype=np.int64)
    for _ in range(iterations):
        labels = np.argmax(vectors @ centres.T, axis=1)
        for c in range(k):
            members = vectors[labels == c]
            if len(members):
                mean = members.sum(axis=0)
                centres[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return labels


def split_non_iid(
    train: BeirDataset,
    doc_vectors: NDArray[np.float32],
    *,
    num_nodes: int,
    seed: int = 0,
) -> list[NodeShard]:
    """Split ``train`` (a BEIR dataset loaded with its train qrels) across ``num_nodes``.

    Args:
        train: The dataset with the training qrels.
        doc_vectors: Base-encoder vectors of ``train.corpus_texts`` (same order).
        num_nodes: Number of members.
        seed: Seed of the clustering and of the cluster-to-member deal.
    """
    if num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
    if doc_vectors.shape[0] != len(train.corpus_ids):
        raise ValueError(
            f"doc_vectors has {doc_vectors.shape[0]} rows for {len(train.corpus_ids)} documents"
        )
    k = min(num_nodes * CLUSTERS_PER_NODE, len(train.corpus_ids))
    labels = spherical_kmeans(doc_vectors, k, seed=seed)
    sizes = np.bincount(labels, minlength=k)
    owner_of_cluster = np.zeros(k, dtype=np.int64)
    load = np.zeros(num_nodes, dtype=np.int64)
    for cluster in np.argsort(-sizes, kind="stable"):
        node = int(np.argmin(load))
        owner_of_cluster[cluster] = node
        load[node] += sizes[cluster]
    doc_owner = {
        doc_id: int(owner_of_cluster[label])
        for doc_id, label in zip(train.corpus_ids, labels, strict=True)
    }
    names = [f"node-{i}" for i in range(num_nodes)]
    doc_ids: list[list[str]] = [[] for _ in range(num_nodes)]
    doc_texts: list[list[str]] = [[] for _ in range(num_nodes)]
    for doc_id, text in zip(train.corpus_ids, train.corpus_texts, strict=True):
        doc_ids[doc_owner[doc_id]].append(doc_id)
        doc_texts[doc_owner[doc_id]].append(text)
    pairs: list[list[tuple[str, str, str]]] = [[] for _ in range(num_nodes)]
    for query_id, relevant in train.qrels.items():
        for doc_id, score in relevant.items():
            if score > 0 and doc_id in doc_owner:
                pairs[doc_owner[doc_id]].append((query_id, train.queries[query_id], doc_id))
    shards = [NodeShard(names[i], doc_ids[i], doc_texts[i], pairs[i]) for i in range(num_nodes)]
    for shard in shards:
        logger.info(
            "split: node=%s documents=%d interactions=%d",
            shard.node_id,
            len(shard.doc_ids),
            len(shard.interactions),
        )
    return shards


def split_iid(
    train: BeirDataset, *, num_nodes: int, negatives: int = 10, seed: int = 0
) -> list[NodeShard]:
    """Deal training pairs uniformly at random to ``num_nodes`` small members.

    For simulations with many virtual nodes: each member holds the documents its
    pairs point at plus ``negatives`` random other documents, so every member has at
    least one pair when ``num_nodes`` does not exceed the number of pairs.
    """
    pairs = [
        (qid, train.queries[qid], doc_id)
        for qid, relevant in train.qrels.items()
        for doc_id, score in relevant.items()
        if score > 0
    ]
    if not 1 <= num_nodes <= len(pairs):
        raise ValueError(f"num_nodes must be in [1, {len(pairs)}], got {num_nodes}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    text_of = dict(zip(train.corpus_ids, train.corpus_texts, strict=True))
    shards = []
    for node in range(num_nodes):
        mine = [pairs[i] for i in order[node::num_nodes]]
        doc_ids = list(dict.fromkeys(doc for _, _, doc in mine))
        extra = [
            train.corpus_ids[i]
            for i in rng.choice(len(train.corpus_ids), size=negatives, replace=False)
            if train.corpus_ids[i] not in doc_ids
        ]
        doc_ids += extra
        shards.append(NodeShard(f"node-{node}", doc_ids, [text_of[d] for d in doc_ids], mine))
    return shards


def write_shards(shards: list[NodeShard], out_dir: str | Path) -> list[Path]:
    """Write each shard as a member data folder; returns the folders."""
    root = Path(out_dir)
    folders = []
    for shard in shards:
        folder = root / shard.node_id
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / DOCUMENTS_FILE).open("w", encoding="utf-8") as handle:
            for doc_id, text in zip(shard.doc_ids, shard.doc_texts, strict=True):
                handle.write(json.dumps({"id": doc_id, "text": text}) + "\n")
        with (folder / INTERACTIONS_FILE).open("w", encoding="utf-8") as handle:
            for query_id, query, doc_id in shard.interactions:
                handle.write(
                    json.dumps({"query_id": query_id, "query": query, "doc_id": doc_id}) + "\n"
                )
        folders.append(folder)
    return folders
