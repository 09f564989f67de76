"""Publishing a run: the global adapter with its manifest, the run summary and history.

Every aggregation mode ends here, so the released adapter always carries the same
manifest (rounds, nodes, epsilon per unit, aggregation mode, the ledger) beside it. The
manifest names which nodes answered or refused, their epsilons and the public run
settings; it holds no per-node record counts, losses, norms or timings.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from flwr.app import ArrayRecord

from coordinator.central_evaluation import CentralEvaluator, adapter_from_arrays
from coordinator.federation_ledger import FederationLedger
from embedding_core.adapter import Adapter, AdapterSide
from federation.run_config import FederationConfig

__all__ = ["ADAPTER_DIR", "HISTORY_FILE", "LEDGER_FILE", "initial_adapter", "publish"]

logger = logging.getLogger(__name__)

LEDGER_FILE = "federation_ledger.json"
HISTORY_FILE = "history.json"
ADAPTER_DIR = "global_adapter"


def initial_adapter(config: FederationConfig) -> Adapter:
    """The adapter every run starts from (query side, the identity map)."""
    return Adapter(
        config.embedding_dim,
        kind=config.adapter_kind,
        rank=config.adapter_rank or None,
        side=AdapterSide.QUERY,
    )


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
    history = {str(r): m for r, m in sorted(evaluator.history.items())}
    summary: dict[str, object] = {
        "rounds": config.num_server_rounds,
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
        "ndcg@10_per_round": {r: m["ndcg@10"] for r, m in history.items()},
        "final": evaluator.history.get(config.num_server_rounds, {}),
        "seconds": round(time.perf_counter() - started, 1),
    }
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
