"""Adam on the coordinator: the aggregate update is a pseudo-gradient (FedAdam).

Reddi et al., "Adaptive Federated Optimization" (ICLR 2021): the server treats the mean
node update ``Delta_t = aggregate_t - global_t`` as a negative gradient and takes an
Adam step with it. It only post-processes the released aggregate, so it costs no
privacy. With distributed DP (``dp-noise-shares``) each node sends one noisy clipped
gradient step, the aggregate is the noisy gradient of the whole consortium, and this
wrapper turns the federation into DP-SGD with Adam on the union of the nodes' records.

Wraps any strategy whose ``aggregate_train`` returns the new global arrays (FedAvg,
:class:`coordinator.ckks_fedavg.CkksFedAvg`, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import Strategy

from coordinator.strategy_wrapper import StrategyWrapper
from federation.records import flatten, unflatten

__all__ = ["ServerAdam"]

logger = logging.getLogger(__name__)


class ServerAdam(StrategyWrapper):
    """Apply Adam to the wrapped strategy's aggregate update.

    Args:
        strategy: Returns the plain aggregate (``global + mean update``).
        learning_rate: Server step size (> 0).
        beta_1: First-moment decay, in [0, 1).
        beta_2: Second-moment decay, in [0, 1).
        tau: Added to the root of the second moment (Reddi et al.'s adaptivity).
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        learning_rate: float,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        tau: float = 1e-8,
    ) -> None:
        super().__init__(strategy)
        if not learning_rate > 0:
            raise ValueError(f"ServerAdam: learning_rate must be > 0, got {learning_rate}")
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= value < 1:
                raise ValueError(f"ServerAdam: {name} must be in [0, 1), got {value}")
        if not tau > 0:
            raise ValueError(f"ServerAdam: tau must be > 0, got {tau}")
        self.learning_rate, self.beta_1, self.beta_2, self.tau = learning_rate, beta_1, beta_2, tau
        self._first: np.ndarray | None = None
        self._second: np.ndarray | None = None
        self.steps = 0

    def summary(self) -> None:
        """Log the configuration."""
        logger.info(
            "strategy: server Adam lr=%s betas=(%s, %s)",
            self.learning_rate,
            self.beta_1,
            self.beta_2,
        )
        self.strategy.summary()

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Take one Adam step along the aggregate update; ``None`` passes through."""
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if arrays is None or self._reference is None:
            return arrays, metrics
        old = flatten(self._reference).astype(np.float64)
        gradient = old - flatten(arrays).astype(np.float64)  # minus the mean update
        return unflatten(old + self.step(gradient), self._reference), metrics

    def step(self, gradient: np.ndarray) -> np.ndarray:
        """The Adam update (to add to the weights) for one pseudo-gradient."""
        if self._first is None or self._second is None:
            self._first, self._second = np.zeros_like(gradient), np.zeros_like(gradient)
        self.steps += 1
        self._first = self.beta_1 * self._first + (1 - self.beta_1) * gradient
        self._second = self.beta_2 * self._second + (1 - self.beta_2) * gradient**2
        first = self._first / (1 - self.beta_1**self.steps)
        second = self._second / (1 - self.beta_2**self.steps)
        update: np.ndarray = -self.learning_rate * first / (np.sqrt(second) + self.tau)
        logger.info("server-adam: step=%d update_norm=%.4f", self.steps, np.linalg.norm(update))
        return update
