"""The federated part of the main job: a 3-member consortium on SciFact.

Prepares a non-IID 3-node split of SciFact's training interactions, provisions kits,
runs federations on Flower's deployment engine on loopback (TLS, SuperNode auth, CKKS
secure aggregation, DP-SGD on every node) and compares them with base, local-only and
centralised training, all scored as SciFact test nDCG@10 by the evaluator.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR, load_node_data
from dp_training import DPConfig, InteractionSet, TrainConfig, train_adapter
from embedding_core.adapter import Adapter, AdapterKind, AdapterSide
from embedding_core.cache import EmbeddingCache
from embedding_core.data import BeirDataset, load_beir
from embedding_core.data.federated_split import split_non_iid, write_shards
from embedding_core.encoder import Encoder
from embedding_core.evaluation import RetrievalVectors, score_retrieval
from fedembed.loopback_consortium import LoopbackConsortium
from federation.node_privacy import NodePrivacy
from kits.provisioning import provision
from policies import Policy, load_default_policy, plan_privacy
from privacy import noise_multiplier_for

__all__ = ["EPSILONS", "RELEASE_TAG", "Recipe", "run_federated_demo"]

logger = logging.getLogger(__name__)

EPSILONS = (1.0, 2.0, 4.0, 8.0)
NODES = ("node-0", "node-1", "node-2")
RELEASE_TAG = "release"
DELTA = 1e-5


NON_DP_BUDGET = 8.0
"""The budget a member declares for the non-DP comparison run (its rounds charge nothing)."""


@dataclass(frozen=True)
class Recipe:
    """Training recipe shared by every row of the comparison.

    Non-DP rows use minibatch Adam. DP rows use full-batch DP-SGD (Poisson sampling
    rate 1: with ~300 records per node, the largest batch gives the best signal to
    noise), Adam 3e-3 and clip norm 1.0, the best recipe found in
    ``benchmarks/centralised_adapter.py`` and the in-process sweep recorded in
    benchmarks/RESULTS.md. The distributed-DP row (``noise_shares`` > 0) takes one noisy
    full-batch gradient step per node and round, ``distributed_rounds`` rounds, with Adam
    on the coordinator (``dp_training/distributed_dp.py``).
    """

    rounds: int = 5
    local_epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 1e-3
    dp_local_epochs: int = 20
    dp_batch_size: int = 4096
    dp_learning_rate: float = 3e-3
    temperature: float = 0.05
    max_grad_norm: float = 1.0
    adapter_kind: str = "residual_linear"
    adapter_rank: int = 0
    distributed_rounds: int = 100
    noise_shares: int = 3
    server_learning_rate: float = 3e-3

    def run_config(self, *, dp: bool, epsilon: float, data_dir: Path, tag: str) -> dict[str, Any]:
        """Flower run config for one federation."""
        return {
            "num-server-rounds": self.rounds,
            "aggregation": "ckks",
            "adapter-kind": self.adapter_kind,
            "adapter-rank": self.adapter_rank,
            "local-epochs": self.dp_local_epochs if dp else self.local_epochs,
            "batch-size": self.dp_batch_size if dp else self.batch_size,
            "learning-rate": self.dp_learning_rate if dp else self.learning_rate,
            "temperature": self.temperature,
            "dp-enabled": dp,
            "target-epsilon": epsilon,
            "target-delta": DELTA,
            "max-grad-norm": self.max_grad_norm,
            "min-nodes": len(NODES),
            "eval-dataset": "scifact",
            "data-dir": str(data_dir),
            "run-tag": tag,
        }

    def distributed_run_config(self, *, epsilon: float, data_dir: Path, tag: str) -> dict[str, Any]:
        """Flower run config for the distributed-DP federation."""
        return {
            **self.run_config(dp=True, epsilon=epsilon, data_dir=data_dir, tag=tag),
            "num-server-rounds": self.distributed_rounds,
            "local-epochs": 1,
            "learning-rate": 1.0,
            "dp-noise-shares": self.noise_shares,
            "server-learning-rate": self.server_learning_rate,
        }


def run_distributed_row(
    members: dict[str, Path],
    *,
    kits: Path,
    out: Path,
    data_dir: Path,
    recipe: Recipe,
    epsilon: float,
    tag: str | None = None,
    setting: str | None = None,
) -> dict[str, Any]:
    """The distributed-DP federation, on Flower's simulation engine; returns its table row.

    Simulation, not loopback deployment: a SuperNode starts a fresh ClientApp process for
    every message (8-20 s per round here), so 100 rounds would take about half an hour;
    the simulation engine runs the same ServerApp, ClientApp and CKKS code in Ray actors.
    """
    from fedembed.simulation import run_simulated_federation
    from federation.run_config import FederationConfig

    tag = tag or f"ddp-eps{epsilon:g}"
    node_dirs = _copy_members(members, out / "experiments" / tag)
    config = FederationConfig.from_run_config(
        {
            **recipe.distributed_run_config(epsilon=epsilon, data_dir=data_dir, tag=tag),
            "coordinator-kit": str(kits / "coordinator"),
            "out-dir": str(out / "runs" / tag),
        }
    )
    summary = run_simulated_federation(
        config,
        partition_root=out / "experiments" / tag,
        num_nodes=len(node_dirs),
        kit_root=kits,
        # Each member's operator: the run's epsilon is its whole budget, DP required.
        node_privacy=NodePrivacy(max_epsilon=epsilon, max_noise_shares=recipe.noise_shares),
    )
    ledgers = {
        node_id: json.loads((folder / STATE_DIR / LEDGER_FILE).read_text())
        for node_id, folder in node_dirs.items()
        if (folder / STATE_DIR / LEDGER_FILE).exists()
    }
    return {
        "setting": setting
        or f"federated, distributed DP eps={epsilon:g} ({recipe.noise_shares} shares)",
        "ndcg@10": summary["final"]["ndcg@10"],
        "epsilon_per_node": {n: _spent(doc) for n, doc in ledgers.items()},
        "per_round": summary["ndcg@10_per_round"],
        "summary": summary,
    }


def _copy_members(members: dict[str, Path], target: Path) -> dict[str, Path]:
    """Fresh member folders for one experiment (data + embedding cache, no ledger)."""
    out = {}
    for node_id, folder in members.items():
        dest = target / node_id
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(LEDGER_FILE, "*.log"))
        out[node_id] = dest
    return out


def _train_rows(records: InteractionSet, recipe: Recipe, *, dp_epsilon: float | None) -> Adapter:
    """Train one adapter outside the federation (local-only and centralised rows)."""
    adapter = Adapter(
        records.dimension,
        kind=recipe.adapter_kind,
        rank=recipe.adapter_rank or None,
        side=AdapterSide.QUERY,
    )
    dp = None
    epochs, batch, lr = recipe.rounds * recipe.local_epochs, recipe.batch_size, recipe.learning_rate
    if dp_epsilon is not None:
        epochs, batch, lr = (
            recipe.rounds * recipe.dp_local_epochs,
            recipe.dp_batch_size,
            recipe.dp_learning_rate,
        )
        batches = -(-len(records) // batch)
        noise = noise_multiplier_for(
            target_epsilon=dp_epsilon,
            target_delta=DELTA,
            sample_rate=1.0 / batches,
            steps=epochs * batches,
        )
        dp = DPConfig(noise_multiplier=noise, max_grad_norm=recipe.max_grad_norm, delta=DELTA)
    config = TrainConfig(
        epochs=epochs, batch_size=batch, learning_rate=lr, temperature=recipe.temperature
    )
    train_adapter(adapter, records, config, dp=dp)
    return adapter


def run_federated_demo(
    *,
    data_dir: Path,
    out: Path,
    encoder: Encoder,
    cache: EmbeddingCache,
    test_vectors: RetrievalVectors,
    test: BeirDataset,
    recipe: Recipe,
    epsilons: tuple[float, ...] = EPSILONS,
    policy: Policy | None = None,
) -> dict[str, Any]:
    """Run every row of the comparison; returns the results (also written as JSON).

    The last row is the release (``runs/<RELEASE_TAG>/global_adapter``): the index and the
    audit use it. ``policy`` (default: the shipped default) sets its epsilon.
    """
    scifact = data_dir / "scifact"
    train = load_beir(scifact, split="train", name="scifact")
    doc_vectors = cache.get_or_encode(encoder, train.corpus_texts)
    members = {
        f.name: f
        for f in write_shards(split_non_iid(train, doc_vectors, num_nodes=3), out / "members")
    }
    kits = out / "kits"
    provision(kits, node_ids=list(NODES), force=kits.exists())
    rows: list[dict[str, Any]] = []
    base = score_retrieval(test_vectors, test)
    rows.append({"setting": "base (no adapter)", "ndcg@10": base["ndcg@10"]})

    # Centralised, non-private: all training pairs in one place (upper reference).
    positions = {d: i for i, d in enumerate(train.corpus_ids)}
    pairs = [(q, d) for q, rel in train.qrels.items() for d, s in rel.items() if s > 0]
    central = InteractionSet(
        query_vectors=encoder.encode([train.queries[q] for q, _ in pairs]),
        positive_index=np.array([positions[d] for _, d in pairs], dtype=np.int64),
        doc_vectors=doc_vectors,
    )
    adapter = _train_rows(central, recipe, dp_epsilon=None)
    rows.append(
        {
            "setting": "centralised, non-DP",
            "ndcg@10": score_retrieval(test_vectors, test, adapter=adapter)["ndcg@10"],
        }
    )

    # Local only: each member alone with its own data (DP at the largest epsilon).
    for node_id, folder in members.items():
        node = load_node_data(folder)
        q, pos, docs = node.vectors(encoder)
        records = InteractionSet(query_vectors=q, positive_index=pos, doc_vectors=docs)
        for eps in (None, max(epsilons)):
            adapter = _train_rows(records, recipe, dp_epsilon=eps)
            label = "non-DP" if eps is None else f"DP eps={eps:g}"
            rows.append(
                {
                    "setting": f"local only {node_id}, {label}",
                    "ndcg@10": score_retrieval(test_vectors, test, adapter=adapter)["ndcg@10"],
                    "records": len(records),
                }
            )

    # Federations on the deployment engine (CKKS secure aggregation throughout).
    runs: dict[str, Any] = {}
    env = {"FEDEMBED_CACHE_DIR": str(cache.directory), "OMP_NUM_THREADS": "1"}
    with LoopbackConsortium(kits=kits, work=out / "flower", env=env) as consortium:
        consortium.start(list(NODES))
        for dp, eps in [(False, 0.0), *[(True, e) for e in epsilons]]:
            name = "federated, non-DP" if not dp else f"federated, DP eps={eps:g}"
            tag = "nodp" if not dp else f"dp-eps{eps:g}"
            node_dirs = _copy_members(members, out / "experiments" / tag)
            for node_id, folder in node_dirs.items():
                # The members' operators allow the non-DP comparison run explicitly.
                operator = NodePrivacy(max_epsilon=eps if dp else NON_DP_BUDGET, require_dp=dp)
                consortium.start_node(node_id, data_dir=folder, node_privacy=operator)
            summary = consortium.run(
                recipe.run_config(dp=dp, epsilon=eps or 8.0, data_dir=data_dir, tag=tag),
                out_dir=out / "runs" / tag,
            )
            consortium.stop_nodes()
            runs[tag] = summary
            eps_by_node = {
                node_id: json.loads((folder / STATE_DIR / "privacy_ledger.json").read_text())
                for node_id, folder in node_dirs.items()
                if (folder / STATE_DIR / "privacy_ledger.json").exists()
            }
            rows.append(
                {
                    "setting": name,
                    "ndcg@10": summary["final"]["ndcg@10"],
                    "epsilon_per_node": {n: _spent(doc) for n, doc in eps_by_node.items()},
                    "per_round": summary["ndcg@10_per_round"],
                }
            )
    # Distributed DP at the same epsilons (simulation engine, see run_distributed_row).
    for eps in epsilons if recipe.noise_shares else ():
        row = run_distributed_row(
            members, kits=kits, out=out, data_dir=data_dir, recipe=recipe, epsilon=eps
        )
        runs[f"ddp-eps{eps:g}"] = row.pop("summary")
        rows.append(row)
    # The release: the shift adapter at the epsilon the policy plans, whose proven
    # membership-inference bound is the policy's audit limit (policies.privacy_plan).
    plan = plan_privacy(policy or load_default_policy().policy)
    release = replace(
        recipe,
        adapter_kind=AdapterKind.SHIFT.value,
        adapter_rank=0,
        noise_shares=recipe.noise_shares or len(NODES),
    )
    row = run_distributed_row(
        members,
        kits=kits,
        out=out,
        data_dir=data_dir,
        recipe=release,
        epsilon=plan.epsilon,
        tag=RELEASE_TAG,
        setting=f"release: shift adapter, distributed DP eps={plan.epsilon:.2f}",
    )
    runs[RELEASE_TAG] = row.pop("summary")
    rows.append(row)
    results = {
        "recipe": asdict(recipe),
        "delta": DELTA,
        "rows": rows,
        "runs": runs,
        "release": {"tag": RELEASE_TAG, "recipe": asdict(release), "plan": plan.to_dict()},
    }
    (out / "federated_results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _spent(ledger_document: dict[str, Any]) -> float:
    entries = ledger_document.get("entries", [])
    return float(entries[-1]["epsilon_after"]) if entries else 0.0
