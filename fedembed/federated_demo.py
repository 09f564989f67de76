"""The federated part of the main job: a 3-member consortium on SciFact.

Prepares a non-IID 3-node split of SciFact's training interactions, provisions kits,
runs federations on Flower's deployment engine on loopback (TLS, SuperNode auth, CKKS
secure aggregation, DP-SGD on every node) and compares them with base, local-only and
centralised training, all scored as SciFact test nDCG@10 by the evaluator.

Every experiment trains the same members' records, so every experiment is charged to the
same per-member privacy ledger (``members/<node>/state/privacy_ledger.json``), in the
order they run: the release first (its manifest's epsilon is then the whole spend of those
records at the time it is published), then the DP comparison rows, then the rows without
DP, after which the records' cumulative epsilon is infinite. Each row states the epsilon
of its own run and the members' cumulative epsilon after it (:data:`ACCOUNTING`).
"""

from __future__ import annotations

import json
import logging
import math
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
from embedding_core.errors import FedembedError
from embedding_core.evaluation import RetrievalVectors, score_retrieval
from fedembed.loopback_consortium import LoopbackConsortium
from federation.node_privacy import NodePrivacy
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision
from policies import Policy, load_default_policy, plan_privacy
from privacy import PrivacyLedger, noise_multiplier_for

__all__ = [
    "ACCOUNTING",
    "EPSILONS",
    "RELEASE_TAG",
    "Recipe",
    "cumulative_epsilons",
    "member_budget",
    "member_epsilons",
    "run_federated_demo",
]

logger = logging.getLogger(__name__)

EPSILONS = (1.0, 2.0, 4.0, 8.0)
NODES = ("node-0", "node-1", "node-2")
RELEASE_TAG = "release"
DELTA = 1e-5


ACCOUNTING = (
    "one ledger per member across all rows, charged in the order shown; "
    "'inf' once the records were used without DP"
)
"""How the demo table's cumulative epsilon column is kept (printed under the table)."""


def _published(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary of a run that published a model; a failed run stops the demo."""
    if summary.get("status") == "failed":
        raise FedembedError(
            f"a demo federation published nothing: {summary.get('reason', 'no round released')}",
            expected="every member answering the demo's rounds",
            fix="see the refusals in the run's history.json and the nodes' logs",
        )
    return summary


def member_budget(epsilons: tuple[float, ...], release_epsilon: float) -> float:
    """The budget each member's operator declares for every DP row of the demo together.

    The release, the federated rows, the distributed-DP rows and the local-only DP row all
    train the same records; composition never exceeds the sum of their epsilons.
    """
    return release_epsilon + 2 * sum(epsilons) + max(epsilons)


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
    budget: float,
    tag: str | None = None,
    setting: str | None = None,
) -> dict[str, Any]:
    """The distributed-DP federation, on Flower's simulation engine; returns its table row.

    It trains the members' own folders, so its rounds are charged to their ledgers
    (``budget`` is each member operator's declared budget for the whole demo).

    Simulation, not loopback deployment: a SuperNode starts a fresh ClientApp process for
    every message (8-20 s per round here), so 100 rounds would take about half an hour;
    the simulation engine runs the same ServerApp, ClientApp and CKKS code in Ray actors.
    """
    from fedembed.simulation import run_simulated_federation
    from federation.run_config import FederationConfig

    tag = tag or f"ddp-eps{epsilon:g}"
    config = FederationConfig.from_run_config(
        {
            **recipe.distributed_run_config(epsilon=epsilon, data_dir=data_dir, tag=tag),
            "coordinator-kit": str(kits / "coordinator"),
            "out-dir": str(out / "runs" / tag),
        }
    )
    root = {folder.parent for folder in members.values()}
    if len(root) != 1:
        raise ValueError("the members' folders must share one parent (the partition root)")
    summary = _published(
        run_simulated_federation(
            config,
            partition_root=root.pop(),
            num_nodes=len(members),
            kit_root=kits,
            # Each member's operator: its budget for the whole demo, DP required.
            node_privacy=NodePrivacy(max_epsilon=budget, max_noise_shares=recipe.noise_shares),
        )
    )
    return {
        "setting": setting
        or f"federated, distributed DP eps={epsilon:g} ({recipe.noise_shares} shares)",
        "ndcg@10": summary["final"]["ndcg@10"],
        "run_epsilon": epsilon,
        "epsilon_per_node": member_epsilons(members),
        "per_round": summary["ndcg@10_per_round"],
        "summary": summary,
    }


def member_epsilons(members: dict[str, Path]) -> dict[str, float]:
    """Each member's cumulative epsilon, read from its own ledger (0 before any charge)."""
    spent = {}
    for node_id, folder in members.items():
        path = folder / STATE_DIR / LEDGER_FILE
        spent[node_id] = _spent(json.loads(path.read_text())) if path.exists() else 0.0
    return spent


def _fresh_ledgers(members: dict[str, Path]) -> None:
    """A new demo starts the members' ledgers (and node state) from nothing."""
    for folder in members.values():
        shutil.rmtree(folder / STATE_DIR, ignore_errors=True)


def _train_rows(
    records: InteractionSet,
    recipe: Recipe,
    *,
    dp_epsilon: float | None,
    ledger: PrivacyLedger | None = None,
    run_id: str = "",
) -> Adapter:
    """Train one adapter outside the federation (local-only and centralised rows).

    A DP row is checked against and charged to ``ledger`` (the member's own), as a
    federated round would be.
    """
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
        batches = -(-records.num_units // batch)  # DP-SGD samples units, not records
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
    if ledger is not None and dp is not None:
        ledger.check_new_round(run_id=run_id, round=1)
        ledger.check(
            noise_multiplier=dp.noise_multiplier, sample_rate=1.0 / batches, steps=epochs * batches
        )
    report = train_adapter(adapter, records, config, dp=dp)
    if ledger is not None and dp is not None:
        ledger.charge(
            noise_multiplier=dp.noise_multiplier,
            sample_rate=report.sample_rate,
            steps=report.steps,
            run_id=run_id,
            round=1,
        )
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
    _fresh_ledgers(members)
    kits = out / "kits"
    provision(kits, node_ids=list(NODES), force=kits.exists())
    # Every member on this host: the key holder's keygen and the others' installs, relayed
    # locally (docs/key_custody.md); no provisioning step ever held the CKKS secret.
    run_ckks_ceremony(kits, key_holder=NODES[0])
    plan = plan_privacy(policy or load_default_policy().policy)
    budget = member_budget(epsilons, plan.epsilon)
    rows: list[dict[str, Any]] = []
    base = score_retrieval(test_vectors, test)
    rows.append({"setting": "base (no adapter)", "ndcg@10": base["ndcg@10"]})

    # The release first: the shift adapter at the epsilon the policy plans, whose proven
    # membership-inference bound is the policy's audit limit (policies.privacy_plan). Its
    # manifest's epsilon is then everything the members' records had spent when it was
    # published; the comparison rows below are charged after it.
    release = replace(
        recipe,
        adapter_kind=AdapterKind.SHIFT.value,
        adapter_rank=0,
        noise_shares=recipe.noise_shares or len(NODES),
    )
    runs: dict[str, Any] = {}
    row = run_distributed_row(
        members,
        kits=kits,
        out=out,
        data_dir=data_dir,
        recipe=release,
        epsilon=plan.epsilon,
        budget=budget,
        tag=RELEASE_TAG,
        setting=f"release: shift adapter, distributed DP eps={plan.epsilon:.2f}",
    )
    runs[RELEASE_TAG] = row.pop("summary")
    rows.append(row)

    # Federations on the deployment engine (CKKS secure aggregation throughout), DP first;
    # the run without DP comes last, with the other rows that use the records without DP.
    env = {"FEDEMBED_CACHE_DIR": str(cache.directory), "OMP_NUM_THREADS": "1"}
    with LoopbackConsortium(kits=kits, work=out / "flower", env=env) as consortium:
        consortium.start(list(NODES))
        for dp, eps in [*[(True, e) for e in epsilons], (False, 0.0)]:
            if not dp:
                # Distributed DP and the local-only DP row, while the budget is finite.
                rows.extend(
                    _distributed_rows(members, kits, out, data_dir, recipe, epsilons, budget, runs)
                )
                rows.extend(
                    _local_rows(members, encoder, test_vectors, test, recipe, epsilons, budget)
                )
            name = "federated, non-DP" if not dp else f"federated, DP eps={eps:g}"
            tag = "nodp" if not dp else f"dp-eps{eps:g}"
            for node_id, folder in members.items():
                # The members' operators allow the non-DP comparison run explicitly.
                operator = NodePrivacy(max_epsilon=budget, require_dp=dp)
                consortium.start_node(node_id, data_dir=folder, node_privacy=operator)
            summary = _published(
                consortium.run(
                    recipe.run_config(dp=dp, epsilon=eps or 8.0, data_dir=data_dir, tag=tag),
                    out_dir=out / "runs" / tag,
                )
            )
            consortium.stop_nodes()
            runs[tag] = summary
            rows.append(
                {
                    "setting": name,
                    "ndcg@10": summary["final"]["ndcg@10"],
                    "run_epsilon": eps if dp else math.inf,
                    "epsilon_per_node": member_epsilons(members),
                    "per_round": summary["ndcg@10_per_round"],
                }
            )

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
            "run_epsilon": math.inf,
        }
    )
    cumulative_epsilons(rows)
    results = {
        "recipe": asdict(recipe),
        "delta": DELTA,
        "accounting": ACCOUNTING,
        "member_budget": budget,
        "rows": rows,
        "runs": runs,
        "release": {"tag": RELEASE_TAG, "recipe": asdict(release), "plan": plan.to_dict()},
    }
    (out / "federated_results.json").write_text(json.dumps(_strict_json(results), indent=2) + "\n")
    return results


def _strict_json(value: Any) -> Any:
    """``value`` with infinite epsilons written as the string ``"inf"`` (strict JSON)."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict_json(v) for v in value]
    return value


def _distributed_rows(
    members: dict[str, Path],
    kits: Path,
    out: Path,
    data_dir: Path,
    recipe: Recipe,
    epsilons: tuple[float, ...],
    budget: float,
    runs: dict[str, Any],
) -> list[dict[str, Any]]:
    """Distributed DP at the comparison's epsilons (simulation engine)."""
    rows = []
    for eps in epsilons if recipe.noise_shares else ():
        row = run_distributed_row(
            members,
            kits=kits,
            out=out,
            data_dir=data_dir,
            recipe=recipe,
            epsilon=eps,
            budget=budget,
        )
        runs[f"ddp-eps{eps:g}"] = row.pop("summary")
        rows.append(row)
    return rows


def _local_rows(
    members: dict[str, Path],
    encoder: Encoder,
    test_vectors: RetrievalVectors,
    test: BeirDataset,
    recipe: Recipe,
    epsilons: tuple[float, ...],
    budget: float,
) -> list[dict[str, Any]]:
    """Local only: each member alone with its own data, DP (charged) before non-DP."""
    rows = []
    for eps in (max(epsilons), None):
        for node_id, folder in members.items():
            node = load_node_data(folder)
            q, pos, docs = node.vectors(encoder)
            records = InteractionSet(query_vectors=q, positive_index=pos, doc_vectors=docs)
            ledger = PrivacyLedger.open(
                node.state_dir / LEDGER_FILE, node_id=node_id, max_epsilon=budget, delta=DELTA
            )
            run_id = f"local-only-eps{eps:g}" if eps is not None else "local-only"
            adapter = _train_rows(records, recipe, dp_epsilon=eps, ledger=ledger, run_id=run_id)
            label = "non-DP" if eps is None else f"DP eps={eps:g}"
            rows.append(
                {
                    "setting": f"local only {node_id}, {label}",
                    "ndcg@10": score_retrieval(test_vectors, test, adapter=adapter)["ndcg@10"],
                    "records": len(records),
                    "run_epsilon": math.inf if eps is None else eps,
                    "epsilon_per_node": {node_id: member_epsilons({node_id: folder})[node_id]},
                }
            )
    return rows


def cumulative_epsilons(rows: list[dict[str, Any]]) -> None:
    """Once a row used the members' records without DP, every later row's spend is inf."""
    spent_without_dp: set[str] = set()
    everyone = {n for row in rows for n in row.get("epsilon_per_node", {})}
    for row in rows:
        if row.get("run_epsilon") == math.inf:
            nodes = set(row.get("epsilon_per_node", {})) or everyone
            spent_without_dp |= nodes
            row["epsilon_per_node"] = dict.fromkeys(sorted(nodes), math.inf)
        elif "epsilon_per_node" in row:
            row["epsilon_per_node"] = {
                n: math.inf if n in spent_without_dp else e
                for n, e in row["epsilon_per_node"].items()
            }


def _spent(ledger_document: dict[str, Any]) -> float:
    entries = ledger_document.get("entries", [])
    return float(entries[-1]["epsilon_after"]) if entries else 0.0
