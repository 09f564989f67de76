"""SecAgg+ mode strategy: legacy FedAvg over the unmasked mean update, with a ledger.

:class:`SecAggPlusFedAvg` is the strategy that ``SecAggPlusWorkflow`` drives (see
:mod:`coordinator.secaggplus_app`): it applies the unmasked weighted mean update to the
global adapter, checks the *aggregate* (shapes, finite, norm within the clip norm plus
the quantization slack) and withholds a round that fails, evaluates centrally each
round, and records what the nodes reported in the federation ledger.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.common import (
    FitIns,
    FitRes,
    NDArrays,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp.strategy import FedAvg as MessageFedAvg

from coordinator.central_evaluation import CentralEvaluator
from coordinator.federation_ledger import FederationLedger
from coordinator.update_validation import NORM_TOLERANCE
from federation.run_config import FederationConfig
from federation.secaggplus_params import SECAGGPLUS, SecAggPlusParams, quantization_tolerance
from federation.wire import SERVER_ROUND_KEY, MetricKey, WeightingMode, as_float

__all__ = ["SecAggPlusFedAvg", "default_params"]

logger = logging.getLogger(__name__)


def _to_float32(arrays: NDArrays) -> NDArrays:
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def _reason(failure: BaseException | tuple[ClientProxy, FitRes]) -> str:
    if isinstance(failure, tuple):
        return f"status {failure[1].status.code}: {failure[1].status.message}"
    error = failure.args[0] if failure.args else failure
    reason = getattr(error, "reason", None)
    return str(reason) if reason else str(error)


def default_params(config: FederationConfig) -> SecAggPlusParams:
    """SecAgg+ parameters for ``config``: unit weights need ``max_weight = 1``."""
    if config.weighting == WeightingMode.UNIFORM:
        return SecAggPlusParams(max_weight=1.0)
    return SecAggPlusParams()


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
        self.params = params or default_params(config)
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
        settings = dataclasses.replace(self.config.round_settings(), aggregation=SECAGGPLUS)
        config: dict[str, Scalar] = dict(settings.to_record())
        config[SERVER_ROUND_KEY] = server_round
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
        # Weights are public: 1 each, or the counts the nodes' operators declared public.
        heaviest = max(res.num_examples for _, res in results)
        if heaviest > self.params.max_weight:  # SecAgg+ may have clipped that node's values
            return f"a node weighs {heaviest}, above max_weight={self.params.max_weight}"
        clip = self.config.update_clip_norm
        if clip <= 0:
            return ""
        total = float(sum(res.num_examples for _, res in results))
        if total <= 0:
            return "the nodes reported no weight"
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

    def record_round(
        self,
        server_round: int,
        state: WorkflowState,
        *,
        excluded: Mapping[int, str] | None = None,
    ) -> None:
        """Record what the nodes reported in ``server_round`` (also for halted rounds).

        ``excluded``: Flower node id -> reason, for the nodes kept out of the round
        (not enrolled: :class:`coordinator.authorised_grid.AuthorisedNodesGrid`); each is
        recorded as a refusal.
        """
        nodes: dict[str, dict[str, Any]] = {}
        reported: set[int] = set()
        for proxy, res in state.legacy_results:
            reported.add(proxy.node_id)
            # Which nodes answered and their epsilons only: no counts, losses or timings.
            report: dict[str, Any] = {"answered": True}
            if MetricKey.EPSILON.value in res.metrics:
                report["epsilon"] = as_float(res.metrics[MetricKey.EPSILON.value])
            self.ledger.names.put(nodes, proxy.node_id, report)  # by kit name
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
        for node_id, reason in sorted((excluded or {}).items()):
            nodes[str(node_id)] = {"error": f"not enrolled: {reason}"}
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
        logger.info(
            "round %d/%d: %d replies of %d sampled, %d refused, %s",
            server_round,
            self.config.num_server_rounds,
            len(reported),
            len(state.sampled_node_ids),
            sum(1 for report in nodes.values() if "error" in report),
            "aggregated" if self.released.get(server_round, False) else "nothing aggregated",
        )
