"""SecAgg+ aggregation mode: Flower's own SecAgg+ (Bell et al., CCS 2020) for the adapter.

``aggregation = "secaggplus"``. Flower 1.42 implements SecAgg+ only in the legacy
API, so this mode runs the legacy ``DefaultWorkflow`` with a ``SecAggPlusWorkflow`` fit
step inside a ``ServerApp`` main function, next to the Message-API strategies of
``server_app.py``::

    DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares, reconstruction_threshold,
                                                    clipping_range, quantization_range))
      strategy = SecAggPlusFedAvg (legacy FedAvg): initial adapter, central nDCG@10 each
                 round (CentralEvaluator), mean update -> global, ledger, aggregate check

Each node (``client_node.secaggplus_client``) sends ``weight * (new - global)``
quantized and masked, with a public weight: 1 under ``weighting = "uniform"`` (then
``max_weight = 1``, so no quantization level is lost to the weight), or the record count
its operator declared public under ``"declared-counts"``. The coordinator unmasks only
the *sum* over the surviving nodes and never sees one node's update. A node that drops
out or refuses (privacy budget) mid-round is removed by reconstructing its pairwise masks
from its neighbours' shares.

Only enrolled nodes take part: with a ``coordinator-kit`` in the run config the workflow
sees the grid through :class:`coordinator.authorised_grid.AuthorisedNodesGrid`, which
reports and messages only nodes whose registered SuperNode key is on the kit's
authorised list; every other node is recorded in the ledger as a refusal. A config
with a kit is refused on an engine that reports no node keys (Flower's simulation).

What this mode cannot do: validate single updates (``UpdateValidation`` needs to see
them); instead the *aggregate* is checked (finite, norm within the clip norm plus the
quantization slack) and a round that fails is not released. Node-level DP noise is not
offered in this mode yet (``node-noise-multiplier`` must be 0).

Layout: :mod:`federation.secaggplus_params` (constants, :class:`SecAggPlusParams`,
:func:`quantization_tolerance` and the quantization bounds, which the node shares),
:mod:`coordinator.secaggplus_strategy` (:class:`SecAggPlusFedAvg`); this module holds
the fit workflow and the ServerApp wiring.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, cast

from flwr.app import Context
from flwr.server import LegacyContext, ServerConfig
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp import Grid, ServerApp

from coordinator.authorised_grid import AuthorisedNodesGrid, authorised_grid
from coordinator.central_evaluation import CentralEvaluator
from coordinator.publication import LEDGER_FILE, finish, initial_adapter
from coordinator.secaggplus_strategy import SecAggPlusFedAvg, default_params
from embedding_core.app_logging import configure_logging
from federation.run_config import FederationConfig
from federation.secaggplus_params import SecAggPlusParams, check_config

__all__ = [
    "make_secaggplus_server_app",
    "make_workflow",
    "run_secaggplus_federation",
]

logger = logging.getLogger(__name__)


class _RecordingSecAggPlusWorkflow(SecAggPlusWorkflow):
    """SecAgg+ fit workflow that lets the strategy record every round, halted or not."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state: WorkflowState | None = None

    def setup_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        self._state = state
        return bool(super().setup_stage(grid, context, state))

    def __call__(self, grid: Grid, context: Context) -> None:
        self._state = None
        super().__call__(grid, context)
        strategy = getattr(context, "strategy", None)
        if isinstance(strategy, SecAggPlusFedAvg) and self._state is not None:
            cfg = context.state.config_records[MAIN_CONFIGS_RECORD]
            excluded = grid.take_exclusions() if isinstance(grid, AuthorisedNodesGrid) else {}
            if isinstance(grid, AuthorisedNodesGrid):
                strategy.ledger.names.update(grid.admitted)  # kit names in the ledger
            strategy.record_round(
                int(cast(int, cfg[WorkflowKey.CURRENT_ROUND])), self._state, excluded=excluded
            )


def make_workflow(config: FederationConfig, params: SecAggPlusParams) -> DefaultWorkflow:
    """The legacy default workflow with SecAgg+ as its fit step."""
    fit = _RecordingSecAggPlusWorkflow(
        num_shares=params.num_shares,
        reconstruction_threshold=params.reconstruction_threshold,
        max_weight=params.max_weight,
        clipping_range=params.resolved_clipping_range(config),
        quantization_range=params.quantization_range,
        modulus_range=params.modulus_range,
        timeout=config.round_timeout,
    )
    return DefaultWorkflow(fit_workflow=fit)


def run_secaggplus_federation(
    grid: Grid,
    context: Context,
    config: FederationConfig,
    *,
    params: SecAggPlusParams | None = None,
) -> dict[str, object]:
    """Run all rounds with SecAgg+, evaluate centrally, publish; returns the summary."""
    check_config(config)
    config = config.with_run_tag(context.run_id)
    params = params or default_params(config)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    initial = initial_adapter(config)
    state = initial.state_dict()
    evaluator = CentralEvaluator(
        data_dir=config.data_dir or None,
        dataset=config.eval_dataset,
        kind=config.adapter_kind,
        rank=config.adapter_rank,
        out_dir=out_dir,
        encoder_backend=config.encoder_backend,
    )
    strategy = SecAggPlusFedAvg(
        config,
        names=list(state),
        initial=[t.detach().cpu().numpy() for t in state.values()],
        ledger_path=out_dir / LEDGER_FILE,
        evaluator=evaluator if evaluator.enabled else None,
        params=params,
    )
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(
            num_rounds=config.num_server_rounds, round_timeout=config.round_timeout
        ),
        strategy=strategy,
    )
    logger.info(
        "secaggplus: rounds=%d clipping_range=%s quantization_range=%d",
        config.num_server_rounds,
        strategy.clipping_range,
        params.quantization_range,
    )
    # Only nodes whose registered key is on the coordinator kit's list take part.
    make_workflow(config, params)(authorised_grid(grid, config.coordinator_kit), legacy)
    summary = finish(  # raises when no round was aggregated: nothing published
        config,
        evaluator=evaluator,
        ledger=strategy.ledger,
        final_arrays=strategy.arrays(),
        started=started,
    )
    logger.info(
        "federation: done rounds=%d seconds=%s", config.num_server_rounds, summary["seconds"]
    )
    return summary


def make_secaggplus_server_app(
    config: FederationConfig, *, params: SecAggPlusParams | None = None
) -> ServerApp:
    """A ServerApp that runs ``config`` with SecAgg+ aggregation."""
    check_config(config)
    app = ServerApp()

    @app.main()
    def _main(grid: Grid, context: Context) -> None:
        configure_logging()
        run_secaggplus_federation(grid, context, config, params=params)

    return app
