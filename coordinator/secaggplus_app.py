"""SecAgg+ aggregation mode: Flower's own SecAgg+ (Bell et al., CCS 2020) for the adapter.

``aggregation = "secaggplus"``. Flower 1.42 implements SecAgg+ only in the legacy
API, so this mode runs the legacy ``DefaultWorkflow`` with a ``SecAggPlusWorkflow`` fit
step inside a ``ServerApp`` main function, next to the Message-API strategies of
``server_app.py``::

    DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares, reconstruction_threshold,
                                                    clipping_range, quantization_range))
      strategy = SecAggPlusFedAvg (legacy FedAvg): initial adapter, central nDCG@10 each
                 round (CentralEvaluator), mean update -> global, ledger, aggregate check

Each node (``client_node.secaggplus_client``) sends ``num_examples * (new - global)``
quantized and masked; the coordinator unmasks only the *sum* over the surviving nodes
and never sees one node's update. A node that drops out or refuses (privacy budget)
mid-round is removed by reconstructing its pairwise masks from its neighbours' shares.

Quantization. SecAgg+ clips each weighted value to ``[-clipping_range, clipping_range]``
and rounds it stochastically to one of ``quantization_range`` levels. The weighted
value is ``(n_i / max_weight) * update``, and a node's update is bounded by the
node-level clip norm, so ``clipping_range = update_clip_norm`` (the default when it is
set) never clips. Each node's rounding error is below one step
``2 * clipping_range / quantization_range``, so the unmasked mean differs from the
plaintext FedAvg mean by at most :func:`quantization_tolerance` per value. The sum of
``k`` nodes' quantized values must stay below ``modulus_range``: ``k *
quantization_range < modulus_range`` (2^32 / 2^22 = 1024 nodes per round by default).

What this mode cannot do: validate single updates (``UpdateValidation`` needs to see
them); instead the *aggregate* is checked (finite, norm within the clip norm plus the
quantization slack) and a round that fails is not released. Node-level DP noise is not
offered in this mode yet (``node-noise-multiplier`` must be 0).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from flwr.app import Array, ArrayRecord, Context
from flwr.common import (
    FitIns,
    FitRes,
    NDArrays,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg as MessageFedAvg

from coordinator.central_evaluation import CentralEvaluator
from coordinator.federation_config import FederationConfig
from coordinator.federation_ledger import FederationLedger
from coordinator.server_app import LEDGER_FILE, publish
from coordinator.update_validation import NORM_TOLERANCE
from coordinator.wire import ConfigKey, MetricKey, as_float
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.errors import FedembedError
from fedembed.app_logging import configure_logging

__all__ = [
    "DEFAULT_MAX_WEIGHT",
    "DEFAULT_QUANTIZATION_RANGE",
    "SECAGGPLUS",
    "UNCLIPPED_CLIPPING_RANGE",
    "SecAggPlusFedAvg",
    "SecAggPlusParams",
    "make_secaggplus_server_app",
    "quantization_tolerance",
    "run_secaggplus_federation",
    "run_simulated_secaggplus_federation",
]

logger = logging.getLogger(__name__)

SECAGGPLUS = "secaggplus"  # the aggregation mode's name (not yet in wire.AggregationMode)
DEFAULT_QUANTIZATION_RANGE = 2**22
DEFAULT_MODULUS_RANGE = 2**32
DEFAULT_MAX_WEIGHT = 1000.0
UNCLIPPED_CLIPPING_RANGE = 1.0  # per-value bound when update-clip-norm is 0


def quantization_tolerance(
    *,
    num_nodes: int,
    total_weight: float,
    max_weight: float,
    clipping_range: float,
    quantization_range: int,
) -> float:
    """Worst-case per-value difference between the SecAgg+ mean and the plaintext mean.

    Every node rounds ``(n_i / max_weight) * u_i`` to a grid of step
    ``2 * clipping_range / quantization_range`` with an error below one step; the sum of
    ``num_nodes`` errors is divided by ``total_weight / max_weight`` (plus a negligible
    term from quantizing the weights themselves, below ``max_weight / (2 *
    quantization_range * min n_i)`` relative).
    """
    step = 2.0 * clipping_range / quantization_range
    return num_nodes * step * max_weight / total_weight


@dataclass(frozen=True)
class SecAggPlusParams:
    """SecAgg+ protocol parameters (see ``flwr.server.workflow.SecAggPlusWorkflow``).

    Attributes:
        num_shares: Shares per node secret (int), or a fraction of the sampled nodes
            (float; 1.0 = every sampled node is every node's neighbour, i.e. SecAgg).
        reconstruction_threshold: Shares needed to reconstruct a secret (int), or a
            fraction of ``num_shares``; tolerates ``num_shares - threshold`` dropouts.
        clipping_range: Per-value clip before quantization; ``None``: the node-level
            ``update_clip_norm`` when set (never clips), else ``UNCLIPPED_CLIPPING_RANGE``.
        quantization_range: Quantization levels.
        modulus_range: Mask modulus (a power of 2 above ``quantization_range``).
        max_weight: Upper bound of a node's record count (the FedAvg weight).
    """

    num_shares: int | float = 1.0
    reconstruction_threshold: int | float = 2.0 / 3.0
    clipping_range: float | None = None
    quantization_range: int = DEFAULT_QUANTIZATION_RANGE
    modulus_range: int = DEFAULT_MODULUS_RANGE
    max_weight: float = DEFAULT_MAX_WEIGHT

    def resolved_clipping_range(self, config: FederationConfig) -> float:
        """The clipping range used for ``config``."""
        if self.clipping_range is not None:
            return self.clipping_range
        if config.update_clip_norm > 0:
            return config.update_clip_norm
        return UNCLIPPED_CLIPPING_RANGE


def _check_config(config: FederationConfig) -> None:
    if config.aggregation != SECAGGPLUS:
        raise FedembedError(
            f"aggregation={config.aggregation!r} given to the SecAgg+ ServerApp",
            expected=f"aggregation={SECAGGPLUS!r}",
            fix="use coordinator.server_app for 'ckks' and 'plaintext'",
        )
    if config.node_noise_multiplier > 0:
        raise FedembedError(
            "node-level DP noise is not available with SecAgg+ aggregation yet",
            expected="node-noise-multiplier = 0 with aggregation='secaggplus'",
            fix="set node-noise-multiplier = 0, or use aggregation='ckks'",
        )
    if config.min_nodes < 2:
        raise FedembedError(
            f"SecAgg+ needs at least 2 nodes per round, min-nodes={config.min_nodes}",
            fix="set min-nodes >= 2 (a sum over one node is that node's update)",
        )


def _to_float32(arrays: NDArrays) -> NDArrays:
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def _reason(failure: BaseException | tuple[ClientProxy, FitRes]) -> str:
    if isinstance(failure, tuple):
        return f"status {failure[1].status.code}: {failure[1].status.message}"
    error = failure.args[0] if failure.args else failure
    reason = getattr(error, "reason", None)
    return str(reason) if reason else str(error)


class SecAggPlusFedAvg(FedAvg):
    """Legacy FedAvg over SecAgg+ mean updates, with central evaluation and a ledger.

    ``SecAggPlusWorkflow`` hands ``aggregate_fit`` the unmasked weighted *mean update*
    (the same vector in every result); this strategy adds it to the round's global
    adapter, checks it, and records the nodes' privacy reports.

    Args:
        config: The federation's configuration.
        names: Array names of the adapter's state dict (legacy Parameters have none).
        initial: The initial adapter's arrays, in ``names`` order.
        ledger_path: Where the federation ledger JSON is written.
        evaluator: Central evaluator (nDCG@10 each round), or ``None``.
        params: SecAgg+ parameters (for the aggregate check).
    """

    def __init__(
        self,
        config: FederationConfig,
        *,
        names: list[str],
        initial: NDArrays,
        ledger_path: Path,
        evaluator: CentralEvaluator | None = None,
        params: SecAggPlusParams | None = None,
    ) -> None:
        self.config = config
        self.names = names
        self.params = params or SecAggPlusParams()
        self.clipping_range = self.params.resolved_clipping_range(config)
        self.evaluator = evaluator
        self.global_arrays: NDArrays = _to_float32(initial)
        self.released: dict[int, bool] = {}
        # The Message-API FedAvg is never called: FederationLedger only stores rounds here.
        self.ledger = FederationLedger(MessageFedAvg(), path=ledger_path, delta=config.target_delta)
        super().__init__(
            fraction_fit=config.fraction_train,
            fraction_evaluate=0.0,
            min_fit_clients=config.min_nodes,
            min_evaluate_clients=config.min_nodes,
            min_available_clients=config.min_nodes,
            evaluate_fn=self._evaluate if evaluator is not None else None,
            on_fit_config_fn=self._fit_config,
            accept_failures=True,
            initial_parameters=ndarrays_to_parameters(self.global_arrays),
        )

    def __repr__(self) -> str:
        return f"SecAggPlusFedAvg(clipping_range={self.clipping_range})"

    def arrays(self, ndarrays: NDArrays | None = None) -> ArrayRecord:
        """Named ArrayRecord of ``ndarrays`` (default: the current global adapter)."""
        values = self.global_arrays if ndarrays is None else ndarrays
        return ArrayRecord(
            {
                name: Array(np.asarray(a, dtype=np.float32))
                for name, a in zip(self.names, values, strict=True)
            }
        )

    def _fit_config(self, server_round: int) -> dict[str, Scalar]:
        config: dict[str, Scalar] = dict(self.config.train_config())
        config[ConfigKey.SERVER_ROUND.value] = server_round
        config[ConfigKey.AGGREGATION.value] = SECAGGPLUS
        return config

    def _evaluate(
        self, server_round: int, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, dict[str, Scalar]] | None:
        assert self.evaluator is not None
        metrics = self.evaluator(server_round, self.arrays(parameters))
        values: dict[str, Scalar] = {k: as_float(v) for k, v in metrics.items()}
        return 1.0 - float(values.get("ndcg@10", 0.0)), values

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Remember the round's global adapter, then sample nodes as FedAvg does."""
        self.global_arrays = _to_float32(parameters_to_ndarrays(parameters))
        if self.ledger.total_nodes <= 0:
            self.ledger.total_nodes = client_manager.num_available()
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Apply the unmasked mean update to the global adapter (if it passes the check)."""
        self.released[server_round] = False
        if not results:
            logger.warning("secaggplus: round=%d no result; model unchanged", server_round)
            return None, {}
        mean = [
            np.asarray(a, dtype=np.float64)
            for a in parameters_to_ndarrays(results[0][1].parameters)
        ]
        reason = self._check_mean(mean, results)
        if reason:
            logger.warning("secaggplus: round=%d aggregate rejected: %s", server_round, reason)
            return None, {}
        self.global_arrays = [
            (g.astype(np.float64) + m).astype(np.float32)
            for g, m in zip(self.global_arrays, mean, strict=True)
        ]
        self.released[server_round] = True
        metrics: dict[str, Scalar] = {}
        if self.fit_metrics_aggregation_fn is not None:
            metrics = self.fit_metrics_aggregation_fn(
                [(res.num_examples, res.metrics) for _, res in results]
            )
        logger.info(
            "secaggplus: round=%d nodes=%d mean_update_norm=%.5f",
            server_round,
            len(results),
            math.sqrt(sum(float(np.sum(m * m)) for m in mean)),
        )
        return ndarrays_to_parameters(self.global_arrays), metrics

    def _check_mean(
        self, mean: list[np.ndarray[Any, Any]], results: list[tuple[ClientProxy, FitRes]]
    ) -> str:
        shapes = [g.shape for g in self.global_arrays]
        if [m.shape for m in mean] != shapes:
            return f"shapes {[m.shape for m in mean]} differ from the model's {shapes}"
        if not all(np.isfinite(m).all() for m in mean):
            return "the aggregate holds NaN or Inf"
        heaviest = max(res.num_examples for _, res in results)
        if heaviest > self.params.max_weight:  # SecAgg+ may have clipped that node's values
            return f"a node weighs {heaviest} records, above max_weight={self.params.max_weight}"
        clip = self.config.update_clip_norm
        if clip <= 0:
            return ""
        total = float(sum(res.num_examples for _, res in results))
        if total <= 0:
            return "the nodes reported no records"
        per_value = quantization_tolerance(
            num_nodes=len(results),
            total_weight=total,
            max_weight=self.params.max_weight,
            clipping_range=self.clipping_range,
            quantization_range=self.params.quantization_range,
        )
        size = sum(m.size for m in mean)
        bound = clip * (1 + NORM_TOLERANCE) + math.sqrt(size) * per_value
        norm = math.sqrt(sum(float(np.sum(m * m)) for m in mean))
        if norm > bound:
            return f"mean update norm {norm:.4f} exceeds the clip norm bound {bound:.4f}"
        return ""

    def record_round(self, server_round: int, state: WorkflowState) -> None:
        """Record what the nodes reported in ``server_round`` (also for halted rounds)."""
        nodes: dict[str, dict[str, Any]] = {}
        reported: set[int] = set()
        for proxy, res in state.legacy_results:
            reported.add(proxy.node_id)
            report: dict[str, Any] = {"num_examples": res.num_examples}
            if MetricKey.EPSILON.value in res.metrics:
                report["epsilon"] = as_float(res.metrics[MetricKey.EPSILON.value])
            nodes[str(proxy.node_id)] = report
        dropped = sorted(state.sampled_node_ids - reported)
        # Flower's collect stage appends each failure twice: keep distinct reasons.
        reasons = list(dict.fromkeys(_reason(f) for f in state.failures))
        if len(dropped) == 1 and len(reasons) == 1:
            keys = [str(dropped[0])]
        else:  # SecAgg+ keeps no node id with a failure: name them by position
            keys = [f"failure-{i}" for i in range(len(reasons))]
        for key, reason in zip(keys, reasons, strict=True):
            nodes[key] = {"error": reason}
            logger.warning("secaggplus: round=%d node=%s failed: %s", server_round, key, reason)
        self.ledger.rounds.append(
            {
                "round": server_round,
                "sampled": len(state.sampled_node_ids),
                "released": self.released.get(server_round, False),
                "nodes": nodes,
                "node_level_epsilon": None,
            }
        )
        self.ledger.save()


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
            strategy.record_round(int(cast(int, cfg[WorkflowKey.CURRENT_ROUND])), self._state)


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
    _check_config(config)
    params = params or SecAggPlusParams()
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    initial = Adapter(
        config.embedding_dim,
        kind=config.adapter_kind,
        rank=config.adapter_rank or None,
        side=AdapterSide.QUERY,
    )
    state = initial.state_dict()
    evaluator = CentralEvaluator(
        data_dir=config.data_dir or None,
        dataset=config.eval_dataset,
        kind=config.adapter_kind,
        rank=config.adapter_rank,
    )
    strategy = SecAggPlusFedAvg(
        config,
        names=list(state),
        initial=[t.detach().cpu().numpy() for t in state.values()],
        ledger_path=out_dir / LEDGER_FILE,
        evaluator=evaluator,
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
    make_workflow(config, params)(grid, legacy)
    summary = publish(
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
    _check_config(config)
    app = ServerApp()

    @app.main()
    def _main(grid: Grid, context: Context) -> None:
        configure_logging()
        run_secaggplus_federation(grid, context, config, params=params)

    return app


def run_simulated_secaggplus_federation(
    config: FederationConfig,
    *,
    partition_root: Path,
    num_nodes: int,
    max_epsilon: float | None = None,
    num_cpus: int = 2,
    params: SecAggPlusParams | None = None,
) -> dict[str, Any]:
    """As ``simulation.run_simulated_federation``, with SecAgg+ on both sides."""
    from client_node.secaggplus_client import make_secaggplus_client_app
    from coordinator.simulation import partition_mod, simulate

    server = make_secaggplus_server_app(config, params=params)
    client = make_secaggplus_client_app(
        mods=[partition_mod(partition_root, max_epsilon=max_epsilon)]
    )
    logger.info("simulation: secaggplus nodes=%d rounds=%d", num_nodes, config.num_server_rounds)
    return simulate(server, client, num_nodes=num_nodes, num_cpus=num_cpus, out_dir=config.out_dir)
