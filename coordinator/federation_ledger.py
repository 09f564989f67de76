"""The coordinator's view of privacy spending, recorded as a strategy wrapper.

Per round it records what each node reported (its own sample-level epsilon from its
ledger, or its refusal and reason) and, when node-level DP is on, composes the
node-level Gaussian mechanism at sampling rate ``nodes per round / nodes`` (McMahan
et al., ICLR 2018, "Learning Differentially Private Recurrent Language Models") with
:class:`~privacy.DPSGDAccountant`: RDP while nodes are sampled, exact
Gaussian DP when every node takes part in every round. Persisted as JSON next to the
run's outputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from coordinator.strategy_wrapper import StrategyWrapper
from federation.wire import ContentKey, MetricKey, as_float
from privacy import DPSGDAccountant

__all__ = ["FederationLedger"]

logger = logging.getLogger(__name__)


class FederationLedger(StrategyWrapper):
    """Wrap a strategy; record per-node privacy reports and node-level accounting.

    Args:
        strategy: The wrapped strategy.
        path: JSON file to persist the ledger to (rewritten after each round).
        node_noise_multiplier: Node-level noise multiplier (0: node-level DP off).
        total_nodes: Population size for the node-level sampling rate.
        delta: Node-level delta.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        path: Path,
        node_noise_multiplier: float = 0.0,
        total_nodes: int = 0,
        delta: float = 1e-5,
    ) -> None:
        super().__init__(strategy)
        self.path = path
        self.node_noise_multiplier = node_noise_multiplier
        self.total_nodes = total_nodes
        self.delta = delta
        self.accountant = DPSGDAccountant()
        self.rounds: list[dict[str, Any]] = []
        self._sampled = 0

    @property
    def node_level_epsilon(self) -> float | None:
        """Node-level epsilon spent so far (None when node-level DP is off)."""
        if self.node_noise_multiplier <= 0 or not self.accountant.history:
            return None
        return float(self.accountant.get_epsilon(self.delta))

    def per_node_epsilon(self) -> dict[str, float]:
        """The latest sample-level epsilon each node reported (by Flower node id)."""
        out: dict[str, float] = {}
        for entry in self.rounds:
            for node, report in entry["nodes"].items():
                if "epsilon" in report:
                    out[node] = report["epsilon"]
        return out

    def refusals(self) -> list[dict[str, Any]]:
        """Every node error reported, with round, node id and reason."""
        return [
            {"round": entry["round"], "node": node, "reason": report["error"]}
            for entry in self.rounds
            for node, report in entry["nodes"].items()
            if "error" in report
        ]

    def summary(self) -> None:
        """Log the configuration."""
        logger.info("ledger: path=%s node_noise=%s", self.path, self.node_noise_multiplier)
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Delegate and remember how many nodes were sampled."""
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._sampled = len(messages)
        if self.total_nodes <= 0:
            self.total_nodes = len(list(grid.get_node_ids()))
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Record node reports, delegate, then account for the node-level release."""
        replies = list(replies)
        nodes: dict[str, dict[str, Any]] = {}
        for reply in replies:
            node = str(reply.metadata.src_node_id)
            if reply.has_error():
                nodes[node] = {"error": reply.error.reason or f"code {reply.error.code}"}
                logger.warning(
                    "ledger: round=%d node=%s refused: %s", server_round, node, reply.error.reason
                )
                continue
            metrics = reply.content.metric_records.get(ContentKey.METRICS.value, MetricRecord())
            report: dict[str, Any] = {"num_examples": metrics.get(MetricKey.NUM_EXAMPLES.value)}
            if MetricKey.EPSILON.value in metrics:
                report["epsilon"] = as_float(metrics[MetricKey.EPSILON.value])
            nodes[node] = report
        arrays, metrics_out = self.strategy.aggregate_train(server_round, replies)
        answered = sum(1 for r in replies if not r.has_error())
        if self.node_noise_multiplier > 0 and answered < self._sampled:
            # The node-level noise is calibrated to the sampled count; with fewer
            # updates one node's share of the mean is larger, so withhold the release.
            logger.warning(
                "ledger: round=%d only %d of %d sampled nodes answered; node-level DP "
                "noise would be too small, aggregate withheld",
                server_round,
                answered,
                self._sampled,
            )
            arrays, metrics_out = None, None
        if arrays is not None and self.node_noise_multiplier > 0 and self._sampled:
            self.accountant.step(
                noise_multiplier=self.node_noise_multiplier,
                sample_rate=min(1.0, self._sampled / max(self.total_nodes, 1)),
            )
        self.rounds.append(
            {
                "round": server_round,
                "sampled": self._sampled,
                "released": arrays is not None,
                "nodes": nodes,
                "node_level_epsilon": self.node_level_epsilon,
            }
        )
        self.save()
        return arrays, metrics_out

    def to_dict(self) -> dict[str, Any]:
        """The ledger as JSON-serialisable data."""
        return {
            "sample_level": {
                "unit": "interaction record",
                "accountant": "rdp (per node ledger)",
                "per_node_epsilon": self.per_node_epsilon(),
            },
            "node_level": {
                "unit": "all of one member's data",
                "noise_multiplier": self.node_noise_multiplier,
                "total_nodes": self.total_nodes,
                "delta": self.delta,
                "epsilon": self.node_level_epsilon,
                "accountant": "rdp, sampling rate = nodes per round / nodes",
            },
            "refusals": self.refusals(),
            "rounds": self.rounds,
        }

    def save(self) -> None:
        """Write the ledger JSON (atomic replace)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(self.path)
