"""The rows of the main job's comparison table, each trained on the members' records.

A distributed-DP row runs on Flower's simulation engine (:func:`run_distributed_row`); the
local-only and centralised rows train in process (:func:`train_outside`). Every DP row is
charged to the members' own ledgers (``members/<node>/state/privacy_ledger.json``) and
:func:`cumulative_epsilons` turns the spend after a row without DP into infinity.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR, load_node_data
from dp_training import DPConfig, InteractionSet, TrainConfig, train_adapter
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.data import BeirDataset
from embedding_core.encoder import Encoder
from embedding_core.errors import FedembedError
from embedding_core.evaluation import RetrievalVectors, score_retrieval
from fedembed.demo_recipe import DELTA, Recipe
from fedembed.round_progress import watch_rounds
from federation.node_privacy import NodePrivacy
from privacy import PrivacyLedger, noise_multiplier_for

if TYPE_CHECKING:
    from federation.run_config import FederationConfig

__all__ = [
    "cumulative_epsilons",
    "fresh_ledgers",
    "local_rows",
    "member_epsilons",
    "partition_root",
    "published",
    "run_distributed_row",
    "simulate_published",
    "strict_json",
    "train_outside",
]


def published(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary of a run that published a model; a failed run stops the demo."""
    if summary.get("status") == "failed":
        raise FedembedError(
            f"a demo federation published nothing: {summary.get('reason', 'no round released')}",
            expected="every member answering the demo's rounds",
            fix="see the refusals in the run's history.json and the nodes' logs",
        )
    return summary


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
    from federation.run_config import FederationConfig

    tag = tag or f"ddp-eps{epsilon:g}"
    config = FederationConfig.from_run_config(
        {
            **recipe.distributed_run_config(epsilon=epsilon, data_dir=data_dir, tag=tag),
            "coordinator-kit": str(kits / "coordinator"),
            "out-dir": str(out / "runs" / tag),
        }
    )
    summary = simulate_published(
        config,
        members,
        kits=kits,
        # Each member's operator: its budget for the whole demo, DP required.
        node_privacy=NodePrivacy(max_epsilon=budget, max_noise_shares=recipe.noise_shares),
        rounds=recipe.distributed_rounds,
        what=f"federation {tag}",
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


def simulate_published(
    config: FederationConfig,
    members: dict[str, Path],
    *,
    kits: Path,
    node_privacy: NodePrivacy,
    rounds: int,
    what: str,
) -> dict[str, Any]:
    """Run ``config`` on Flower's simulation engine over the members' own folders.

    Shows the rounds' progress; returns the summary of a run that published a model (a
    run that released nothing stops the demo, :func:`published`).
    """
    from fedembed.simulation import run_simulated_federation

    with watch_rounds(Path(config.out_dir), total=rounds, what=what):
        return published(
            run_simulated_federation(
                config,
                partition_root=partition_root(members),
                num_nodes=len(members),
                kit_root=kits,
                node_privacy=node_privacy,
            )
        )


def partition_root(members: dict[str, Path]) -> Path:
    """The one folder that holds every member's folder (the simulation's partition root)."""
    root = {folder.parent for folder in members.values()}
    if len(root) != 1:
        raise ValueError("the members' folders must share one parent (the partition root)")
    return root.pop()


def member_epsilons(members: dict[str, Path]) -> dict[str, float]:
    """Each member's cumulative epsilon, read from its own ledger (0 before any charge)."""
    spent = {}
    for node_id, folder in members.items():
        path = folder / STATE_DIR / LEDGER_FILE
        spent[node_id] = _spent(json.loads(path.read_text())) if path.exists() else 0.0
    return spent


def fresh_ledgers(members: dict[str, Path]) -> None:
    """A new demo starts the members' ledgers (and node state) from nothing."""
    for folder in members.values():
        shutil.rmtree(folder / STATE_DIR, ignore_errors=True)


def train_outside(
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


def strict_json(value: Any) -> Any:
    """``value`` with infinite epsilons written as the string ``"inf"`` (strict JSON)."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict_json(v) for v in value]
    return value


def local_rows(
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
            adapter = train_outside(records, recipe, dp_epsilon=eps, ledger=ledger, run_id=run_id)
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
