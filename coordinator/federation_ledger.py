"""The coordinator's view of privacy spending, recorded as a strategy wrapper.

Per round it records what each node reported (its own sample-level epsilon from its
ledger, which holds for a fellow member and every less informed observer, or its
refusal and reason) and, when node-level DP is on, composes the node-level mechanism of
DP-FedAvg (McMahan et al., ICLR 2018, "Learning Differentially Private Recurrent Language
Models"): m of N nodes sampled without replacement, noise ``z * C / m`` on the mean,
replace-one neighbours, with :class:`~privacy.NodeLevelAccountant` (dp-accounting's PLD;
exact Gaussian DP when every node takes part in every round). Persisted as JSON next to
the run's outputs.

Nodes are named by their kit name (the member's name in the consortium), not by the
number Flower gives a SuperNode: :class:`NodeNames` learns, from the grid at each round,
which kit name each connected node's registered public key belongs to (the coordinator
kit's authorised list), else the name its key was registered under; each report keeps
Flower's number as ``flower_node_id``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from coordinator.authorised_grid import canonical_key
from coordinator.strategy_wrapper import StrategyWrapper
from federation.wire import ContentKey, MetricKey, as_float
from privacy import (
    DEFAULT_UNIT,
    NEIGHBOUR_RELATION,
    NODE_LEVEL_ACCOUNTANT,
    NODE_LEVEL_SAMPLING,
    NODE_LEVEL_UNIT,
    NodeLevelAccountant,
    Observer,
    covered_by,
)

__all__ = ["FederationLedger", "NodeNames"]

logger = logging.getLogger(__name__)

_MECHANISM = {
    MetricKey.CHARGED_NOISE: "noise_multiplier",
    MetricKey.SAMPLE_RATE: "sample_rate",
    MetricKey.STEPS: "steps",
}
"""The charged DP-SGD mechanism a node reports, as the manifest's round reports name it."""


class NodeNames:
    """Flower node id -> the member's kit name, learnt from the grid's registered keys.

    Args:
        authorized_nodes: The coordinator kit's authorised list (kit name -> OpenSSH EC
            public key); empty when the run has no coordinator kit.
    """

    def __init__(self, authorized_nodes: Mapping[str, str] | None = None) -> None:
        self._by_key: dict[bytes, str] = {}
        for name, key in (authorized_nodes or {}).items():
            canonical = canonical_key(key)
            if canonical is not None:
                self._by_key[canonical] = name
        self._names: dict[int, str] = {}

    def learn(self, grid: Grid) -> None:
        """Name every connected node whose registered key (or registration) names it."""
        for info in grid.get_nodes():
            key = canonical_key(info.public_key) if info.public_key else None
            name = self._by_key.get(key) if key is not None else None
            if name is None and info.HasField("name") and info.name:
                name = info.name
            if name:
                self._names[int(info.node_id)] = name

    def update(self, names: Mapping[int, str]) -> None:
        """Add known names (e.g. the nodes an authorised grid admitted)."""
        self._names.update({int(node): name for node, name in names.items() if name})

    def name(self, node_id: int | str) -> str:
        """The node's kit name, else Flower's number as text."""
        try:
            number = int(node_id)
        except ValueError:
            return str(node_id)
        return self._names.get(number, str(node_id))

    def put(
        self, nodes: dict[str, dict[str, Any]], node_id: int | str, report: dict[str, Any]
    ) -> str:
        """Enter ``report`` in a round's ``nodes`` under the node's name; returns the key.

        A named report keeps Flower's number as ``flower_node_id``; a second SuperNode
        under a name already taken this round (the same key twice) is entered as
        ``name#<number>``, so neither report hides the other.
        """
        name = self.name(node_id)
        if name == str(node_id) or not str(node_id).isdigit():
            nodes[name] = report
            return name
        number = int(node_id)
        taken = nodes.get(name)
        if taken is not None and taken.get("flower_node_id") != number:
            name = f"{name}#{number}"
        nodes[name] = {**report, "flower_node_id": number}
        return name


class FederationLedger(StrategyWrapper):
    """Wrap a strategy; record per-node privacy reports and node-level accounting.

    Args:
        strategy: The wrapped strategy.
        path: JSON file to persist the ledger to (rewritten after each round).
        node_noise_multiplier: Node-level noise multiplier (0: node-level DP off).
        total_nodes: Population size for the node-level sampling rate.
        delta: Node-level delta.
        names: How nodes are named in the ledger (default: by Flower's number, unless
            the grid reports the names they were registered under).
        num_rounds: The run's rounds, for the line logged after each (0: unknown).
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        path: Path,
        node_noise_multiplier: float = 0.0,
        total_nodes: int = 0,
        delta: float = 1e-5,
        names: NodeNames | None = None,
        num_rounds: int = 0,
    ) -> None:
        super().__init__(strategy)
        self.names = names or NodeNames()
        self.path = path
        self.node_noise_multiplier = node_noise_multiplier
        self.total_nodes = total_nodes
        self.delta = delta
        self.accountant = NodeLevelAccountant()
        self.rounds: list[dict[str, Any]] = []
        self._sampled = 0
        self.num_rounds = num_rounds
        self._round_started = time.perf_counter()

    @property
    def node_level_epsilon(self) -> float | None:
        """Node-level epsilon spent so far (None when node-level DP is off)."""
        if self.node_noise_multiplier <= 0 or not self.accountant.history:
            return None
        return float(self.accountant.get_epsilon(self.delta))

    def per_node_epsilon(self) -> dict[str, float]:
        """The latest sample-level epsilon each node reported (by kit name)."""
        out: dict[str, float] = {}
        for entry in self.rounds:
            for node, report in entry["nodes"].items():
                if "epsilon" in report:
                    out[node] = report["epsilon"]
        return out

    def refusals(self) -> list[dict[str, Any]]:
        """Every node error reported, with round, node (kit name) and reason."""
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
        """Delegate, remember how many nodes were sampled and learn the nodes' names."""
        self.names.learn(grid)
        self._round_started = time.perf_counter()
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
            node_id = reply.metadata.src_node_id
            if reply.has_error():
                node = self.names.put(
                    nodes, node_id, {"error": reply.error.reason or f"code {reply.error.code}"}
                )
                logger.warning(
                    "ledger: round=%d node=%s refused: %s", server_round, node, reply.error.reason
                )
                continue
            metrics = reply.content.metric_records.get(ContentKey.METRICS.value, MetricRecord())
            # Which nodes answered and their epsilons only: no counts, losses or timings.
            report: dict[str, Any] = {"answered": True}
            if MetricKey.EPSILON.value in metrics:
                report["epsilon"] = as_float(metrics[MetricKey.EPSILON.value])
            for key, name in _MECHANISM.items():
                if key.value in metrics:
                    report[name] = as_float(metrics[key.value])
            self.names.put(nodes, node_id, report)
        arrays, metrics_out = self.strategy.aggregate_train(server_round, replies)
        for refusal in self._inner_refusals(server_round):
            # A reply the aggregation refused (e.g. not signed by an authorised node key)
            # is a refusal here too, whatever it reported.
            self.names.put(nodes, refusal["node"], {"error": refusal["reason"]})
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
                sampled=self._sampled,
                total_nodes=max(self.total_nodes, self._sampled),
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
        logger.info(
            "round %d%s: %d replies of %d sampled, %d refused, %s, %.1f s",
            server_round,
            f"/{self.num_rounds}" if self.num_rounds else "",
            answered,
            self._sampled,
            sum(1 for report in nodes.values() if "error" in report),
            "aggregated" if arrays is not None else "nothing aggregated",
            time.perf_counter() - self._round_started,
        )
        return arrays, metrics_out

    def _inner_refusals(self, server_round: int) -> list[dict[str, Any]]:
        """This round's refusals kept by a wrapped strategy (``refusals`` list), if any."""
        found: list[dict[str, Any]] = []
        strategy: object = self.strategy
        while strategy is not None:
            kept = getattr(strategy, "refusals", None)
            if isinstance(kept, list):
                found.extend(r for r in kept if r.get("round") == server_round)
            strategy = getattr(strategy, "strategy", None)
        return found

    def to_dict(self) -> dict[str, Any]:
        """The ledger as JSON-serialisable data."""
        return {
            "sample_level": {
                "unit": DEFAULT_UNIT,
                "accountant": "gdp-full-batch+pld (per node ledger)",
                # Nodes calibrate and charge the view of a fellow member, who knows its
                # own noise share (privacy.observers); every less informed observer
                # faces more noise.
                "observer": Observer.FELLOW_MEMBER.value,
                "holds_for": [o.value for o in covered_by(Observer.FELLOW_MEMBER)],
                "per_node_epsilon": self.per_node_epsilon(),
            },
            "node_level": {
                "unit": NODE_LEVEL_UNIT,
                "noise_multiplier": self.node_noise_multiplier,
                "total_nodes": self.total_nodes,
                "delta": self.delta,
                "epsilon": self.node_level_epsilon,
                "accountant": NODE_LEVEL_ACCOUNTANT,
                "neighbour_relation": NEIGHBOUR_RELATION,
                "sampling": NODE_LEVEL_SAMPLING,
                # The coordinator adds this noise to the mean it computed, so the epsilon
                # holds for whoever sees only the released model: fellow members,
                # partners and outsiders, not the coordinator itself.
                "holds_for": [
                    Observer.OUTSIDER.value,
                    Observer.PARTNER.value,
                    Observer.FELLOW_MEMBER.value,
                ],
                "not_for": [Observer.COORDINATOR.value],
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
