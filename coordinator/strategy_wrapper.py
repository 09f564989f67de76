"""Base for strategies that add behaviour by wrapping another strategy (never forking it)."""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

__all__ = ["StrategyWrapper"]


class StrategyWrapper(Strategy):
    """Delegates every stage to ``strategy``; subclasses override the stages they change.

    ``_reference`` is the global model the current round started from (set by
    ``configure_train``), which wrappers compare updates with or step from.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self._reference: ArrayRecord | None = None

    def summary(self) -> None:
        """Log the wrapped strategy's configuration."""
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Remember the round's global model, then delegate."""
        self._reference = arrays
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Delegate."""
        return self.strategy.aggregate_train(server_round, replies)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Delegate."""
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Delegate."""
        return self.strategy.aggregate_evaluate(server_round, replies)
