"""The coordinator's Flower ServerApp: rounds, secure aggregation, DP, ledger, publishing.

Strategy stack (privacy added by wrapping, never by forking FedAvg)::

    FederationLedger(                       # per-node epsilon / refusals, node-level RDP
      [DifferentialPrivacyClientSideFixedClipping(   # node-level DP (plaintext mode)
        UpdateValidation(FedAvg))]                    # reject NaN/shape/dtype/norm
      | CkksFedAvg(FedAvg))                  # CKKS: sum ciphertexts, node decrypts sum
    optionally inside ServerAdam(...)        # Adam on the aggregate (distributed DP)

The global adapter is evaluated centrally each round and published with a manifest.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    FedAvg,
    Strategy,
)

from coordinator.central_evaluation import CentralEvaluator, adapter_from_arrays
from coordinator.ckks_fedavg import CkksFedAvg
from coordinator.federation_ledger import FederationLedger
from coordinator.server_adam import ServerAdam
from coordinator.update_validation import UpdateValidation
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.app_logging import configure_logging
from federation.run_config import FederationConfig
from federation.wire import AggregationMode, MetricKey

__all__ = [
    "CKKS_PUBLIC_FILE",
    "app",
    "build_strategy",
    "publish",
    "run_federation",
]

logger = logging.getLogger(__name__)

CKKS_PUBLIC_FILE = "ckks_public.ctx"
LEDGER_FILE = "federation_ledger.json"
HISTORY_FILE = "history.json"
ADAPTER_DIR = "global_adapter"

app = ServerApp()


def build_strategy(config: FederationConfig, *, out_dir: Path) -> FederationLedger:
    """Compose the strategy stack for ``config``."""
    weighted_by = (
        MetricKey.NUM_EXAMPLES.value
        if config.node_noise_multiplier == 0
        else MetricKey.UNIT_WEIGHT.value
    )
    fedavg = FedAvg(
        fraction_train=config.fraction_train,
        fraction_evaluate=0.0,
        min_train_nodes=config.min_nodes,
        min_available_nodes=config.min_nodes,
        weighted_by_key=weighted_by,
    )
    inner: Strategy
    if config.aggregation == AggregationMode.CKKS:
        public = (Path(config.coordinator_kit) / CKKS_PUBLIC_FILE).read_bytes()
        inner = CkksFedAvg(fedavg, public_context=public, min_replies=config.dp_noise_shares)
    else:
        warnings.warn(
            "INSECURE: plaintext aggregation; the coordinator sees every node's update. "
            "Use aggregation='ckks' outside tests.",
            stacklevel=2,
        )
        logger.warning("INSECURE plaintext aggregation enabled by allow-insecure-plaintext")
        inner = UpdateValidation(fedavg, clip_norm=config.update_clip_norm)
        if config.node_noise_multiplier > 0:
            inner = DifferentialPrivacyClientSideFixedClipping(
                inner,
                noise_multiplier=config.node_noise_multiplier,
                clipping_norm=config.update_clip_norm,
                num_sampled_clients=config.min_nodes,
            )
    if config.server_learning_rate > 0:
        inner = ServerAdam(inner, learning_rate=config.server_learning_rate)
    return FederationLedger(
        inner,
        path=out_dir / LEDGER_FILE,
        node_noise_multiplier=config.node_noise_multiplier,
        delta=config.target_delta,
    )


def run_federation(grid: Grid, config: FederationConfig) -> dict[str, object]:
    """Run all rounds, evaluate centrally, publish the adapter; returns the summary."""
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    initial = Adapter(
        config.embedding_dim,
        kind=config.adapter_kind,
        rank=config.adapter_rank or None,
        side=AdapterSide.QUERY,
    )
    evaluator = CentralEvaluator(
        data_dir=config.data_dir or None,
        dataset=config.eval_dataset,
        kind=config.adapter_kind,
        rank=config.adapter_rank,
    )
    strategy = build_strategy(config, out_dir=out_dir)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(initial.state_dict()),
        num_rounds=config.num_server_rounds,
        timeout=config.round_timeout,
        train_config=ConfigRecord(config.train_config()),
        evaluate_fn=evaluator,
    )
    initial_arrays = ArrayRecord(initial.state_dict())
    final_arrays = result.arrays if len(result.arrays) else initial_arrays  # no round released
    return publish(
        config, evaluator=evaluator, ledger=strategy, final_arrays=final_arrays, started=started
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


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Flower entry point."""
    configure_logging()
    config = FederationConfig.from_run_config(dict(context.run_config))
    if config.aggregation == AggregationMode.SECAGGPLUS:
        from coordinator.secaggplus_app import run_secaggplus_federation  # imports this module

        run_secaggplus_federation(grid, context, config)
    else:
        run_federation(grid, config)
