"""Local training of the query-side adapter on a node's interactions, optionally DP-SGD.

:func:`train_adapter` is the entry point. Without ``dp`` it runs plain shuffled
minibatch training here; with a :class:`~dp_training.train_config.DPConfig`
it runs DP-SGD through Opacus (see :mod:`dp_training.dp_sgd`; its epsilon is the node
ledger's accountant, :func:`privacy.dpsgd_epsilon`). The configuration and report
dataclasses live in :mod:`dp_training.train_config`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from dp_training.dp_sgd import _train_dp
from dp_training.interactions import (
    CorpusSoftmaxLoss,
    InteractionSet,
    TrainingError,
)
from dp_training.iterate_averaging import IterateAverager
from dp_training.privacy_unit import UnitSoftmaxLoss, negative_tensor, pack_units
from dp_training.train_config import DPConfig, TrainConfig, TrainReport, _make_optimizer
from embedding_core.adapter import Adapter, AdapterSide

__all__ = ["train_adapter"]

logger = logging.getLogger(__name__)


def _check_adapter(adapter: Adapter, data: InteractionSet) -> None:
    if not isinstance(adapter, Adapter):
        raise TrainingError(f"adapter must be an embedding_core Adapter, got {type(adapter)}")
    if adapter.side is not AdapterSide.QUERY:
        raise TrainingError(
            f"train_adapter trains query-side adapters, got side={adapter.side.value!r}",
            expected="Adapter(..., side='query'): documents stay frozen base-encoder "
            "vectors, so each record's gradient depends on that record alone",
            fix="create the adapter with side='query'",
        )
    if adapter.in_dim != data.dimension or adapter.out_dim != data.dimension:
        raise TrainingError(
            f"adapter maps {adapter.in_dim} -> {adapter.out_dim} dimensions, the data has "
            f"{data.dimension}-dimensional queries and documents",
            expected="a query-side adapter without output projection, in_dim = vector width",
        )


def _shuffled_batches(
    n: int, batch_size: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_adapter(
    adapter: Adapter,
    data: InteractionSet,
    config: TrainConfig,
    *,
    dp: DPConfig | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainReport:
    """Train a query-side ``adapter`` in place on ``data``.

    Args:
        adapter: A query-side :class:`~embedding_core.adapter.Adapter` without output
            projection; it holds the trained weights afterwards (same object, same
            state-dict keys, no Opacus wrapper or hooks left).
        data: The node's records and documents; with ``dp`` its privacy units
            (:attr:`InteractionSet.unit_index`, by default one per query) are what
            DP-SGD samples, clips and accounts.
        config: Training hyper-parameters (with ``dp``, ``batch_size`` counts units).
        dp: DP-SGD settings; ``None`` trains without privacy, per record.
        on_epoch: Called with ``(epoch, mean_loss)`` after each epoch.

    Returns:
        A :class:`TrainReport` (with epsilon when ``dp`` is given).
    """
    if not isinstance(data, InteractionSet):
        raise TrainingError(f"data must be an InteractionSet, got {type(data).__name__}")
    if not isinstance(config, TrainConfig):
        raise TrainingError(f"config must be a TrainConfig, got {type(config).__name__}")
    if dp is not None and not isinstance(dp, DPConfig):
        raise TrainingError(f"dp must be a DPConfig or None, got {type(dp).__name__}")
    _check_adapter(adapter, data)
    params = [p for p in adapter.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("the adapter has no trainable parameters")
    documents = torch.from_numpy(np.ascontiguousarray(data.doc_vectors))
    started = time.perf_counter()
    was_training = adapter.training
    adapter.train()
    try:
        if dp is None:
            queries = torch.from_numpy(np.ascontiguousarray(data.query_vectors))
            positives = torch.from_numpy(np.ascontiguousarray(data.positive_index))
            report = _train_plain(
                adapter, queries, positives, documents, config, on_epoch, negative_tensor(data)
            )
        else:
            # One sample per privacy unit: sampled, clipped and accounted as one.
            units, targets = pack_units(data)
            report = _train_dp(
                adapter, units, targets, documents, config, dp, on_epoch, negative_tensor(data)
            )
    finally:
        adapter.train(was_training)
    report.seconds = time.perf_counter() - started
    report.records = len(data)
    report.units = data.num_units
    # No record or unit counts and no losses in the log: they derive from private data.
    logger.info(
        "train: steps=%d dp=%s epsilon=%s seconds=%.1f",
        report.steps,
        dp is not None,
        None if report.epsilon is None else f"{report.epsilon:.3f}",
        report.seconds,
    )
    return report


def _train_plain(
    adapter: Adapter,
    queries: torch.Tensor,
    positives: torch.Tensor,
    documents: torch.Tensor,
    config: TrainConfig,
    on_epoch: Callable[[int, float], None] | None,
    negatives: torch.Tensor | None = None,
) -> TrainReport:
    criterion: CorpusSoftmaxLoss | UnitSoftmaxLoss = (
        CorpusSoftmaxLoss(documents, temperature=config.temperature)
        if negatives is None
        else UnitSoftmaxLoss(documents, temperature=config.temperature, negatives=negatives)
    )
    optimizer = _make_optimizer([p for p in adapter.parameters() if p.requires_grad], config)
    generator = torch.Generator().manual_seed(config.seed)
    n = queries.shape[0]
    averager = IterateAverager(
        [p for p in adapter.parameters() if p.requires_grad],
        config.averaging,
        total_steps=config.epochs * math.ceil(n / config.batch_size),
    )
    steps = 0
    losses: list[float] = []
    for epoch in range(config.epochs):
        total, count = 0.0, 0
        for rows in _shuffled_batches(n, config.batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(adapter(queries[rows]), positives[rows])
            loss.backward()
            optimizer.step()
            averager.update()
            steps += 1
            total += float(loss.detach()) * rows.numel()
            count += rows.numel()
        losses.append(total / max(count, 1))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    averager.apply()
    return TrainReport(
        steps=steps,
        sample_rate=min(1.0, config.batch_size / n),
        noise_multiplier=None,
        max_grad_norm=None,
        epsilon=None,
        losses=losses,
    )
