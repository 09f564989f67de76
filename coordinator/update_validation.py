"""Strategy wrapper that rejects malformed or out-of-bounds node updates.

Before the wrapped strategy aggregates, every reply is checked against the global
model sent that round: same array names, shapes and float dtype, all values finite,
and ``||new - global||`` within the node-level clip norm (a node that skipped its
clipping, or a poisoned update, would otherwise dominate the average). A rejected
reply is logged with its node id and reason and never touches the global model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import Strategy

from coordinator.strategy_wrapper import StrategyWrapper
from federation.wire import ContentKey

__all__ = ["NORM_TOLERANCE", "UpdateValidation", "check_update"]

logger = logging.getLogger(__name__)

NORM_TOLERANCE = 1e-3


def check_update(update: ArrayRecord, reference: ArrayRecord, *, clip_norm: float) -> str | None:
    """Return why ``update`` is unacceptable against ``reference``, or ``None`` if fine."""
    if list(update.keys()) != list(reference.keys()):
        return f"array names {list(update.keys())} differ from {list(reference.keys())}"
    squared = 0.0
    for key, new, old in zip(
        update.keys(), update.to_numpy_ndarrays(), reference.to_numpy_ndarrays(), strict=True
    ):
        if new.shape != old.shape:
            return f"array {key} has shape {new.shape}, expected {old.shape}"
        if new.dtype != old.dtype:
            return f"array {key} has dtype {new.dtype}, expected {old.dtype}"
        if not np.isfinite(new).all():
            return f"array {key} holds NaN or Inf"
        squared += float(np.sum((new.astype(np.float64) - old.astype(np.float64)) ** 2))
    norm = math.sqrt(squared)
    if clip_norm > 0 and norm > clip_norm * (1 + NORM_TOLERANCE):
        return f"update norm {norm:.4f} exceeds the clip norm {clip_norm:.4f}"
    return None


class UpdateValidation(StrategyWrapper):
    """Wrap a strategy so only well-formed, clipped updates reach its aggregation.

    Args:
        strategy: The wrapped strategy (e.g. FedAvg).
        clip_norm: Node-level clip norm of the update; 0 disables the norm check.
    """

    def __init__(self, strategy: Strategy, *, clip_norm: float) -> None:
        if clip_norm < 0:
            raise ValueError(f"clip_norm must be >= 0, got {clip_norm}")
        super().__init__(strategy)
        self.clip_norm = clip_norm
        self.rejected: list[tuple[int, int, str]] = []  # (round, node id, reason)

    def summary(self) -> None:
        """Log the configuration."""
        logger.info("strategy: update validation, clip_norm=%s", self.clip_norm)
        self.strategy.summary()

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Drop invalid replies (logged), aggregate the rest."""
        kept: list[Message] = []
        for reply in replies:
            if reply.has_error():
                kept.append(reply)  # the wrapped strategy logs node errors
                continue
            node = reply.metadata.src_node_id
            arrays = reply.content.array_records.get(ContentKey.ARRAYS.value)
            if arrays is None or self._reference is None:
                reason = "reply carries no arrays"
            else:
                reason = check_update(arrays, self._reference, clip_norm=self.clip_norm) or ""
            if reason:
                logger.warning(
                    "validate: round=%d node=%d rejected: %s", server_round, node, reason
                )
                self.rejected.append((server_round, node, reason))
                continue
            kept.append(reply)
        if not any(not r.has_error() for r in kept):
            logger.warning(
                "validate: round=%d no valid update; global model unchanged", server_round
            )
            return None, None
        return self.strategy.aggregate_train(server_round, kept)
