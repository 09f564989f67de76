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

Every row kind runs at each epsilon of ``epsilons``: the default table has one column
(:data:`~fedembed.demo_recipe.QUICK_EPSILONS`), ``fedembed demo --full-sweep`` four.
Each row is one step of the job (:func:`plan_federation`): a start line, its wall seconds.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from dp_training import InteractionSet
from embedding_core.adapter import AdapterKind
from embedding_core.cache import EmbeddingCache
from embedding_core.data import BeirDataset, load_beir
from embedding_core.data.federated_split import split_non_iid, write_shards
from embedding_core.encoder import Encoder
from embedding_core.evaluation import RetrievalVectors, score_retrieval
from fedembed.demo_recipe import (
    DELTA,
    EPSILONS,
    NODES,
    QUICK_EPSILONS,
    RELEASE_TAG,
    Recipe,
    member_budget,
)
from fedembed.demo_steps import DemoSteps
from fedembed.federation_rows import (
    cumulative_epsilons,
    fresh_ledgers,
    local_rows,
    member_epsilons,
    published,
    run_distributed_row,
    strict_json,
    train_outside,
)
from fedembed.loopback_consortium import LoopbackConsortium
from federation.node_privacy import NodePrivacy
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision
from policies import Policy, load_default_policy, plan_privacy

__all__ = [
    "ACCOUNTING",
    "EPSILONS",
    "NODES",
    "QUICK_EPSILONS",
    "RELEASE_TAG",
    "Recipe",
    "cumulative_epsilons",
    "member_budget",
    "member_epsilons",
    "plan_federation",
    "run_distributed_row",
    "run_federated_demo",
]

logger = logging.getLogger(__name__)

ACCOUNTING = (
    "one ledger per member across all rows, charged in the order shown; "
    "'inf' once the records were used without DP"
)
"""How the demo table's cumulative epsilon column is kept (printed under the table)."""


def plan_federation(steps: DemoSteps, recipe: Recipe, epsilons: tuple[float, ...]) -> None:
    """Plan the federation's steps, in the order :func:`run_federated_demo` runs them."""
    deployed = f"{recipe.rounds} rounds, deployment engine"
    simulated = f"{recipe.distributed_rounds} rounds, simulation engine"
    steps.plan("federation_setup", "federation: split SciFact train over 3 members, kits, keys")
    steps.plan(RELEASE_TAG, f"federation: the release, distributed DP ({simulated})")
    for eps in epsilons:
        steps.plan(f"dp-eps{eps:g}", f"federation: local DP eps={eps:g} ({deployed})")
    for eps in epsilons if recipe.noise_shares else ():
        steps.plan(f"ddp-eps{eps:g}", f"federation: distributed DP eps={eps:g} ({simulated})")
    local = f"federation: local only, 3 members, DP eps={max(epsilons):g} and non-DP"
    steps.plan("local-only", local)
    steps.plan("nodp", f"federation: non-DP ({deployed})")
    steps.plan("centralised", "federation: centralised, non-DP")


def _deployed_row(
    consortium: LoopbackConsortium,
    members: dict[str, Path],
    *,
    recipe: Recipe,
    data_dir: Path,
    out: Path,
    budget: float,
    epsilon: float | None,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """One federation on the deployment engine (``epsilon`` None: without DP)."""
    dp = epsilon is not None
    tag = f"dp-eps{epsilon:g}" if dp else "nodp"
    for node_id, folder in members.items():
        # The members' operators allow the non-DP comparison run explicitly.
        operator = NodePrivacy(max_epsilon=budget, require_dp=dp)
        consortium.start_node(node_id, data_dir=folder, node_privacy=operator)
    summary = published(
        consortium.run(
            recipe.run_config(dp=dp, epsilon=epsilon or 8.0, data_dir=data_dir, tag=tag),
            out_dir=out / "runs" / tag,
        )
    )
    consortium.stop_nodes()
    row = {
        "setting": f"federated, DP eps={epsilon:g}" if dp else "federated, non-DP",
        "ndcg@10": summary["final"]["ndcg@10"],
        "run_epsilon": epsilon if dp else math.inf,
        "epsilon_per_node": member_epsilons(members),
        "per_round": summary["ndcg@10_per_round"],
    }
    return tag, summary, row


def run_federated_demo(
    *,
    data_dir: Path,
    out: Path,
    encoder: Encoder,
    cache: EmbeddingCache,
    test_vectors: RetrievalVectors,
    test: BeirDataset,
    recipe: Recipe,
    epsilons: tuple[float, ...] = QUICK_EPSILONS,
    policy: Policy | None = None,
    steps: DemoSteps | None = None,
) -> dict[str, Any]:
    """Run every row of the comparison; returns the results (also written as JSON).

    The release (``runs/<RELEASE_TAG>/global_adapter``) is what the index and the audit
    use. ``policy`` (default: the shipped default) sets its epsilon. ``steps`` (planned
    by :func:`plan_federation`) times each row; ``None``: a private clock.
    """
    steps = steps or DemoSteps(echo=lambda line: logger.info("%s", line))
    if not any(s.key == RELEASE_TAG for s in steps.steps):
        plan_federation(steps, recipe, epsilons)
    with steps.run("federation_setup"):
        train = load_beir(data_dir / "scifact", split="train", name="scifact")
        doc_vectors = cache.get_or_encode(encoder, train.corpus_texts)
        members = {
            f.name: f
            for f in write_shards(split_non_iid(train, doc_vectors, num_nodes=3), out / "members")
        }
        fresh_ledgers(members)
        kits = out / "kits"
        provision(kits, node_ids=list(NODES), force=kits.exists())
        # Every member on this host: the key holder's keygen and the others' installs,
        # relayed locally (docs/key_custody.md); no provisioning step held the CKKS secret.
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
    label = (
        f"federation: the release, shift adapter, distributed DP eps={plan.epsilon:.2f} "
        f"({release.distributed_rounds} rounds, simulation engine)"
    )
    with steps.run(RELEASE_TAG, label):
        row = run_distributed_row(
            members, recipe=release, epsilon=plan.epsilon, tag=RELEASE_TAG,
            setting=f"release: shift adapter, distributed DP eps={plan.epsilon:.2f}",
            kits=kits, out=out, data_dir=data_dir, budget=budget,
        )  # fmt: skip
        runs[RELEASE_TAG] = row.pop("summary")
        rows.append(row)

    # Federations on the deployment engine (CKKS secure aggregation throughout), DP first;
    # the run without DP comes last, with the other rows that use the records without DP.
    env = {"FEDEMBED_CACHE_DIR": str(cache.directory), "OMP_NUM_THREADS": "1"}
    with LoopbackConsortium(kits=kits, work=out / "flower", env=env) as consortium:
        consortium.start(list(NODES))
        for eps in epsilons:
            with steps.run(f"dp-eps{eps:g}"):
                tag, runs[tag], row = _deployed_row(
                    consortium, members, recipe=recipe, data_dir=data_dir, out=out,
                    budget=budget, epsilon=eps,
                )  # fmt: skip
                rows.append(row)
        # Distributed DP and the local-only DP row, while the budget is finite.
        for eps in epsilons if recipe.noise_shares else ():
            with steps.run(f"ddp-eps{eps:g}"):
                row = run_distributed_row(
                    members, recipe=recipe, epsilon=eps, kits=kits, out=out,
                    data_dir=data_dir, budget=budget,
                )  # fmt: skip
                runs[f"ddp-eps{eps:g}"] = row.pop("summary")
                rows.append(row)
        with steps.run("local-only"):
            rows.extend(local_rows(members, encoder, test_vectors, test, recipe, epsilons, budget))
        with steps.run("nodp"):
            tag, runs[tag], row = _deployed_row(
                consortium, members, recipe=recipe, data_dir=data_dir, out=out,
                budget=budget, epsilon=None,
            )  # fmt: skip
            rows.append(row)

    with steps.run("centralised"):
        # Centralised, non-private: all training pairs in one place (upper reference).
        positions = {d: i for i, d in enumerate(train.corpus_ids)}
        pairs = [(q, d) for q, rel in train.qrels.items() for d, s in rel.items() if s > 0]
        central = InteractionSet(
            query_vectors=cache.get_or_encode(encoder, [train.queries[q] for q, _ in pairs]),
            positive_index=np.array([positions[d] for _, d in pairs], dtype=np.int64),
            doc_vectors=doc_vectors,
        )
        adapter = train_outside(central, recipe, dp_epsilon=None)
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
        "epsilons": list(epsilons),
        "delta": DELTA,
        "accounting": ACCOUNTING,
        "member_budget": budget,
        "rows": rows,
        "runs": runs,
        "release": {"tag": RELEASE_TAG, "recipe": asdict(release), "plan": plan.to_dict()},
    }
    (out / "federated_results.json").write_text(json.dumps(strict_json(results), indent=2) + "\n")
    return results
