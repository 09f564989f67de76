"""A small consortium for federated classifier tests: labelled BANKING77 records, 3 members.

The four intents of ``kmeans_consortium``, 45 training texts each, dealt round-robin to
three member folders (``records.csv`` with ``text`` and ``label`` columns), plus on each
member 3 records of a fifth intent that is not in the public label set (the node skips
them). Held-out texts: 20 test-split texts per intent. Kits are provisioned with the
member-side CKKS key ceremony, node ids ``node-0``..``node-2``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedding_core.cache import EmbeddingCache
from embedding_core.encoder import Encoder
from federation.run_config import FederationConfig
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision
from tests.coordinator.kmeans_consortium import INTENTS, NODES

__all__ = ["ClassifierConsortium", "classifier_config", "make_classifier_consortium"]

PER_INTENT = 45
HELD_OUT_PER_INTENT = 20
OUTSIDE = "card_about_to_expire"
"""An intent outside the public label set: its records are skipped by every node."""
OUTSIDE_PER_NODE = 3


@dataclass(frozen=True)
class ClassifierConsortium:
    """Member folders, kits and the held-out labelled texts."""

    root: Path
    kits: Path
    members: Path
    held_out: list[tuple[str, str]]

    def node_dir(self, name: str) -> Path:
        return self.members / name

    def pooled_records(self, cache_dir: Path) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Every member's in-set records, encoded, and their targets (pooled: tests only)."""
        texts: list[str] = []
        targets: list[int] = []
        for name in NODES:
            with (self.node_dir(name) / "records.csv").open(newline="") as handle:
                for row in csv.DictReader(handle):
                    if row["label"] in INTENTS:
                        texts.append(row["text"])
                        targets.append(INTENTS.index(row["label"]))
        vectors = EmbeddingCache(cache_dir).get_or_encode(Encoder.load(), texts)
        return vectors, np.array(targets, dtype=np.int64)

    def held_out_vectors(self, cache_dir: Path) -> NDArray[np.float32]:
        """The held-out texts encoded as the nodes encode their records."""
        texts = [text for text, _ in self.held_out]
        return EmbeddingCache(cache_dir).get_or_encode(Encoder.load(), texts)


def _rows(path: Path, wanted: dict[str, int]) -> list[tuple[str, str]]:
    counts = dict.fromkeys(wanted, 0)
    rows: list[tuple[str, str]] = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            label = row["category"]
            if label in counts and counts[label] < wanted[label]:
                counts[label] += 1
                rows.append((row["text"], label))
    return sorted(rows, key=lambda r: list(wanted).index(r[1]))


def make_classifier_consortium(root: Path, banking77: Path) -> ClassifierConsortium:
    """Provision kits and write three labelled member folders under ``root``."""
    wanted = dict.fromkeys(INTENTS, PER_INTENT) | {OUTSIDE: OUTSIDE_PER_NODE * len(NODES)}
    records = _rows(banking77 / "train.csv", wanted)
    for i, name in enumerate(NODES):
        path = root / "members" / name / "records.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(records[i :: len(NODES)])
    held_out = _rows(banking77 / "test.csv", dict.fromkeys(INTENTS, HELD_OUT_PER_INTENT))
    kits = root / "kits"
    provision(kits, node_ids=list(NODES))
    run_ckks_ceremony(kits, key_holder=NODES[0])
    return ClassifierConsortium(root, kits, root / "members", held_out)


def classifier_config(
    consortium: ClassifierConsortium,
    out_dir: Path,
    *,
    epsilon: float,
    shares: int = 3,
    **extra: object,
) -> FederationConfig:
    """A classifier run over the consortium: the 4 intents, 5 rounds, ``shares`` shares."""
    values: dict[str, object] = {
        "task": "classifier",
        "classifier_labels": ",".join(INTENTS),
        "classifier_rounds": 5,
        "classifier_epsilon": epsilon,
        "aggregation": "ckks",
        "coordinator_kit": str(consortium.kits / "coordinator"),
        "dp_noise_shares": shares,
        "min_nodes": shares,
        "eval_dataset": "none",
        "run_tag": "classifier-run",
        "round_timeout": 120.0,
        "out_dir": str(out_dir),
        **extra,
    }
    return FederationConfig(**values)  # type: ignore[arg-type]
