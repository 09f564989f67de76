"""Publishing a run: the global adapter with its manifest, the run summary and history.

Every aggregation mode ends here (:func:`finish`), so the released adapter always
carries the same manifest (rounds, nodes by kit name, epsilon per unit, aggregation
mode, run tag, the ledger) beside it. The manifest names which nodes answered or refused,
their epsilons and the public run settings; it holds no per-node record counts, losses,
norms or timings.

A run in which no round was aggregated (every node refused, was not enrolled or
dropped out) publishes nothing: no adapter is written or replaced; ``history.json``
says ``"status": "failed"`` with the reason and the refusals, and
:class:`FederationFailedError` is raised so that the ServerApp, and Flower with it,
reports the run as failed.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from flwr.app import ArrayRecord

from coordinator.central_evaluation import CentralEvaluator, adapter_from_arrays
from coordinator.federation_ledger import FederationLedger
from coordinator.run_folder import (
    ADAPTER_DIR,
    HISTORY_FILE,
    LEDGER_FILE,
    STATUS_FAILED,
    STATUS_SUCCEEDED,
)
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.atomic_file import atomic_write_json
from embedding_core.errors import FedembedError
from federation.run_config import FederationConfig

__all__ = [
    "ADAPTER_DIR",
    "HISTORY_FILE",
    "LEDGER_FILE",
    "STATUS_FAILED",
    "STATUS_SUCCEEDED",
    "FederationFailedError",
    "finish",
    "initial_adapter",
    "publish",
]

logger = logging.getLogger(__name__)


class FederationFailedError(FedembedError):
    """The run aggregated nothing: nothing was published."""


def initial_adapter(config: FederationConfig) -> Adapter:
    """The adapter every run starts from (query side, the identity map)."""
    return Adapter(
        config.embedding_dim,
        kind=config.adapter_kind,
        rank=config.adapter_rank or None,
        side=AdapterSide.QUERY,
    )


def _summary(
    config: FederationConfig,
    *,
    evaluator: CentralEvaluator,
    ledger: FederationLedger,
    started: float,
) -> dict[str, object]:
    """The run summary: public settings, nodes, epsilons, refusals, central metrics."""
    summary: dict[str, object] = {
        "status": STATUS_SUCCEEDED,
        "run_tag": config.run_tag,
        "rounds": config.num_server_rounds,
        "rounds_released": sum(1 for r in ledger.rounds if r["released"]),
        "aggregation": config.aggregation,
        "dp_enabled": config.dp_enabled,
        "target_epsilon": config.target_epsilon,
        "target_delta": config.target_delta,
        # > 1: distributed DP, each node added 1/sqrt(shares) of the noise and the epsilons
        # hold for the secure sum (dp_training/distributed_dp.py states the terms).
        "dp_noise_shares": config.dp_noise_shares,
        "server_learning_rate": config.server_learning_rate,
        "weighting": config.weighting,
        "nodes": sorted({n for r in ledger.rounds for n in r["nodes"]}),
        "per_node_epsilon": ledger.per_node_epsilon(),
        "node_level_epsilon": ledger.node_level_epsilon,
        "refusals": ledger.refusals(),
        "eval_dataset": config.eval_dataset,
        # which encoder made every vector of the run (the nodes' and the evaluation's)
        "encoder_backend": config.encoder_backend,
        "encoder_space": evaluator.encoder.space,
    }
    if evaluator.enabled:
        history = {str(r): m for r, m in sorted(evaluator.history.items())}
        summary["ndcg@10_per_round"] = {r: m["ndcg@10"] for r, m in history.items()}
        summary["final"] = evaluator.history.get(config.num_server_rounds, {})
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def publish(
    config: FederationConfig,
    *,
    evaluator: CentralEvaluator,
    ledger: FederationLedger,
    final_arrays: ArrayRecord,
    started: float,
) -> dict[str, object]:
    """Save the global adapter + manifest and history.json; returns the run summary."""
    out_dir = Path(config.out_dir)
    final = adapter_from_arrays(final_arrays, kind=config.adapter_kind, rank=config.adapter_rank)
    summary = _summary(config, evaluator=evaluator, ledger=ledger, started=started)
    final.save(
        out_dir / ADAPTER_DIR,
        base_model_id=evaluator.encoder.model_id,
        base_model_fingerprint=evaluator.encoder.fingerprint,
        metadata={**summary, "ledger": ledger.to_dict()},
    )
    (out_dir / HISTORY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    logger.info(
        "federation: done rounds=%d seconds=%s", config.num_server_rounds, summary["seconds"]
    )
    return summary


def finish(
    config: FederationConfig,
    *,
    evaluator: CentralEvaluator,
    ledger: FederationLedger,
    final_arrays: ArrayRecord,
    started: float,
) -> dict[str, object]:
    """Publish the run if any round was aggregated; else record the failure and raise.

    Raises:
        FederationFailedError: No round was aggregated; ``history.json`` says why and
            nothing else was written (no adapter, none replaced).
    """
    if any(r["released"] for r in ledger.rounds):
        return publish(
            config, evaluator=evaluator, ledger=ledger, final_arrays=final_arrays, started=started
        )
    refusals = ledger.refusals()
    reason = f"no round of {config.num_server_rounds} was aggregated: " + (
        f"{len(refusals)} refusal(s) from {len({r['node'] for r in refusals})} node(s)"
        if refusals
        else "no node answered"
    )
    summary = _summary(config, evaluator=evaluator, ledger=ledger, started=started)
    summary.update(status=STATUS_FAILED, reason=reason)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / HISTORY_FILE, summary)
    logger.error("federation: failed, nothing published: %s", reason)
    raise FederationFailedError(
        f"federation run {config.run_tag!r} failed: {reason}; nothing was published",
        expected="at least one round aggregated from enrolled nodes that accept the run",
        fix=f"see the refusals in {out_dir / HISTORY_FILE} (budgets, enrolment, "
        "node privacy settings) and start a new run",
    )
