"""A small consortium for federated k-means tests: BANKING77 records on three members.

Four well-separated BANKING77 intents, 45 training texts each, dealt round-robin to
three member folders (``records.csv``, the file a k-means run names); the public corpus
that seeds the centroids is 10 test-split texts per intent (no member's record). Kits
are provisioned with the member-side CKKS key ceremony, node ids ``node-0``..``node-2``
(the simulation engine's partition names).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedding_core.cache import EmbeddingCache
from embedding_core.encoder import Encoder
from federation.run_config import FederationConfig
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision

__all__ = ["INTENTS", "NODES", "KMeansConsortium", "kmeans_config", "make_consortium"]

INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_phone", "top_up_failed")
NODES = ("node-0", "node-1", "node-2")
PER_INTENT = 45
PUBLIC_PER_INTENT = 10


@dataclass(frozen=True)
class KMeansConsortium:
    """Member folders, kits, the public corpus and every member's texts."""

    root: Path
    kits: Path
    members: Path
    public_corpus: Path
    texts: dict[str, list[str]]

    def node_dir(self, name: str) -> Path:
        return self.members / name

    def pooled_vectors(self, cache_dir: Path) -> NDArray[np.float32]:
        """Every member's records encoded as the nodes encode them (pooled: tests only)."""
        texts = [t for name in NODES for t in self.texts[name]]
        return EmbeddingCache(cache_dir).get_or_encode(Encoder.load(), texts)

    def published_ari(self, centroids_file: Path, cache_dir: Path) -> float:
        """ARI between central k-means on the pooled records and the published centroids."""
        from sklearn.metrics import adjusted_rand_score

        from analytics.kmeans import kmeans
        from dp_training.dp_kmeans import assign_corrected

        published = json.loads(centroids_file.read_text())
        pooled = self.pooled_vectors(cache_dir)
        federated = assign_corrected(
            pooled, np.asarray(published["centroids"]), np.asarray(published["corrections"])
        )
        central = kmeans(pooled, len(INTENTS), seed=0, progress=False).labels
        return float(adjusted_rand_score(central, federated))


def _rows(path: Path, per_intent: int) -> dict[str, list[str]]:
    chosen: dict[str, list[str]] = {intent: [] for intent in INTENTS}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            bucket = chosen.get(row["category"])
            if bucket is not None and len(bucket) < per_intent:
                bucket.append(row["text"])
    return chosen


def _write_csv(path: Path, texts: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)


def make_consortium(root: Path, banking77: Path) -> KMeansConsortium:
    """Provision kits and write three member folders and the public corpus under ``root``."""
    train = _rows(banking77 / "train.csv", PER_INTENT)
    records = [text for intent in INTENTS for text in train[intent]]
    texts = {name: records[i :: len(NODES)] for i, name in enumerate(NODES)}
    for name in NODES:
        _write_csv(root / "members" / name / "records.csv", texts[name])
    public = _rows(banking77 / "test.csv", PUBLIC_PER_INTENT)
    corpus = root / "public.csv"
    _write_csv(corpus, [text for intent in INTENTS for text in public[intent]])
    kits = root / "kits"
    provision(kits, node_ids=list(NODES))
    run_ckks_ceremony(kits, key_holder=NODES[0])
    return KMeansConsortium(root, kits, root / "members", corpus, texts)


def kmeans_config(
    consortium: KMeansConsortium, out_dir: Path, *, epsilon: float, shares: int = 3, **extra: object
) -> FederationConfig:
    """A k-means run over the consortium: 4 clusters, 5 rounds, ``shares`` noise shares."""
    values: dict[str, object] = {
        "task": "kmeans",
        "kmeans_k": len(INTENTS),
        "kmeans_rounds": 5,
        "kmeans_epsilon": epsilon,
        "kmeans_public_corpus": str(consortium.public_corpus),
        "aggregation": "ckks",
        "coordinator_kit": str(consortium.kits / "coordinator"),
        "dp_noise_shares": shares,
        "min_nodes": shares,
        "eval_dataset": "none",
        "run_tag": "kmeans-run",
        "round_timeout": 120.0,
        "out_dir": str(out_dir),
        **extra,
    }
    return FederationConfig(**values)  # type: ignore[arg-type]
