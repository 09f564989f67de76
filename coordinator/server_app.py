"""The coordinator's Flower ServerApp: rounds, secure aggregation, DP, ledger, publishing.

Strategy stack (privacy added by wrapping, never by forking FedAvg)::

    FederationLedger(                       # per-node epsilon / refusals, node-level RDP
      [DifferentialPrivacyClientSideFixedClipping(   # node-level DP (plaintext mode)
        UpdateValidation(FedAvg))]                    # reject NaN/shape/dtype/norm
      | CkksFedAvg(FedAvg))                  # CKKS: sum ciphertexts, node decrypts sum
    optionally inside ServerAdam(...)        # Adam on the aggregate (distributed DP)

Nodes are weighted by public numbers only (``weighting``: 1 each, or the record counts
their operators declared public); nodes report no losses, norms or timings, and the
ledger and manifest keep no per-node counts. The global adapter is evaluated centrally
each round (unless ``eval-dataset = "none"``) and published with a manifest; the ledger
and the central metrics land in the run folder every round. A run in which no round was
aggregated publishes nothing and fails (:func:`coordinator.publication.finish`). A run
without a ``run-tag`` is tagged ``flwr-<Flower run id>``, so no two runs share a tag.
"""

from __future__ import annotations

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

from coordinator.central_evaluation import CentralEvaluator
from coordinator.ckks_fedavg import CkksFedAvg
from coordinator.federation_ledger import FederationLedger, NodeNames
from coordinator.prompt_grid import PromptGrid
from coordinator.publication import LEDGER_FILE, finish, initial_adapter
from coordinator.secaggplus_app import run_secaggplus_federation
from coordinator.server_adam import ServerAdam
from coordinator.update_validation import UpdateValidation
from embedding_core.app_logging import configure_logging
from federation.flower_pulls import shorten_pull_backoff
from federation.kmeans_settings import Task
from federation.record_count_slot import uses_count_slot
from federation.run_config import FederationConfig
from federation.wire import AggregationMode, MetricKey, WeightingMode
from kits.loader import load_coordinator_kit

__all__ = ["app", "build_strategy", "run_federation"]

logger = logging.getLogger(__name__)

app = ServerApp()


def build_strategy(config: FederationConfig, *, out_dir: Path) -> FederationLedger:
    """Compose the strategy stack for ``config``."""
    # Weights are public: the counts nodes declared public, or 1 each (run_config
    # refuses declared counts with node-level noise, which assumes equal weights).
    weighted_by = (
        MetricKey.NUM_EXAMPLES.value
        if config.weighting == WeightingMode.DECLARED_COUNTS
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
    names = NodeNames()
    if config.aggregation == AggregationMode.CKKS:
        # The checked loader: manifest hashes, and no secret key in the coordinator kit.
        kit = load_coordinator_kit(config.coordinator_kit)
        names = NodeNames(kit.authorized_nodes)
        inner = CkksFedAvg(
            fedavg,
            public_context=kit.ckks_public_context,
            authorized_nodes=kit.authorized_nodes,
            min_replies=config.dp_noise_shares,
            weighting=config.weighting,
            count_slot_clip=config.max_grad_norm if uses_count_slot(config) else 0.0,
        )
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
        names=names,
        num_rounds=config.num_server_rounds,
    )


def run_federation(grid: Grid, config: FederationConfig) -> dict[str, object]:
    """Run all rounds, evaluate centrally, publish the adapter; returns the summary.

    A run with ``task = "kmeans"`` runs DP federated k-means instead
    (:func:`coordinator.kmeans_strategy.run_kmeans_federation`), one with ``task =
    "classifier"`` a DP classifier head
    (:func:`coordinator.classifier_strategy.run_classifier_federation`).

    Raises:
        FederationFailedError: No round was aggregated (nothing is published).
    """
    if config.task == Task.KMEANS:
        from coordinator.kmeans_strategy import run_kmeans_federation

        return run_kmeans_federation(grid, config)
    if config.task == Task.CLASSIFIER:
        from coordinator.classifier_strategy import run_classifier_federation

        return run_classifier_federation(grid, config)
    config = config.with_run_tag(grid.run.run_id)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    initial = initial_adapter(config)
    evaluator = CentralEvaluator(
        data_dir=config.data_dir or None,
        dataset=config.eval_dataset,
        kind=config.adapter_kind,
        rank=config.adapter_rank,
        out_dir=out_dir,
        encoder_backend=config.encoder_backend,
    )
    strategy = build_strategy(config, out_dir=out_dir)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(initial.state_dict()),
        num_rounds=config.num_server_rounds,
        timeout=config.round_timeout,
        train_config=ConfigRecord(config.round_settings().to_record()),  # type: ignore[arg-type]
        evaluate_fn=evaluator if evaluator.enabled else None,
    )
    initial_arrays = ArrayRecord(initial.state_dict())
    final_arrays = result.arrays if len(result.arrays) else initial_arrays
    return finish(
        config, evaluator=evaluator, ledger=strategy, final_arrays=final_arrays, started=started
    )


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Flower entry point."""
    configure_logging()
    config = FederationConfig.from_run_config(dict(context.run_config))
    config = config.with_run_tag(context.run_id)
    logger.info("federation: run-tag=%s out-dir=%s", config.run_tag, config.out_dir)
    grid = PromptGrid(grid)  # replies collected within 0.1 s, not Flower's 3 s
    shorten_pull_backoff()  # and their objects pulled as they land, not after 1 s
    if config.aggregation == AggregationMode.SECAGGPLUS:
        run_secaggplus_federation(grid, context, config)
    else:
        run_federation(grid, config)
