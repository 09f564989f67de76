"""DP-SGD training of the query-side adapter through Opacus.

With a :class:`~dp_training.train_config.DPConfig`, training is DP-SGD through
Opacus: Poisson sampling of privacy units, per-unit gradient clipping to
``max_grad_norm`` and Gaussian noise of standard deviation ``noise_multiplier *
max_grad_norm`` on the summed gradient. A unit is a group of records (all records of one
query, or of one person), packed as one sample whose gradient is the sum of its records'
(see :mod:`dp_training.privacy_unit`). The reported epsilon is the node ledger's accountant,
:func:`privacy.dpsgd_epsilon` (exact Gaussian DP at sample rate 1, RDP below it), for the
steps taken, at ``dp.delta``, for this one call (the caller composes it across federated
rounds); :func:`privacy.noise_multiplier_for` calibrates the noise multiplier to a
budget with the same accountant.

Per-sample gradient norms come from Opacus's ghost clipping by default
(``grad_sample_mode="ghost"``): for a linear layer applied to one vector per record the
norm of unit ``i``'s weight gradient is ``|g_i| |a_i|`` (a unit of several queries
uses their Gram matrices), so no ``(b, d, d)``
per-sample gradient is materialised. It costs a second backward pass instead; see
``benchmarks/bench_dp_step.py`` for measurements of every mode.
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dp_training.interactions import CorpusSoftmaxLoss
from dp_training.iterate_averaging import IterateAverager
from dp_training.privacy_unit import UnitSoftmaxLoss
from dp_training.train_config import (
    DPConfig,
    TrainConfig,
    TrainReport,
    _make_optimizer,
)
from embedding_core.adapter import Adapter
from privacy import ACCOUNTANT, dpsgd_epsilon

_OPACUS_ACCOUNTANT = "rdp"  # Opacus's own accountant only counts the steps taken here


class PackedRecords(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Packed units as a map dataset with a bulk ``__getitems__`` (one gather per batch)."""

    def __init__(self, queries: torch.Tensor, positives: torch.Tensor) -> None:
        self.queries = queries
        self.positives = positives

    def __len__(self) -> int:
        return int(self.queries.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.queries[index], self.positives[index]

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        rows = torch.as_tensor(indices, dtype=torch.int64)
        return [self.queries[rows], self.positives[rows]]


def batch_as_is(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """Collate for :class:`PackedRecords`: ``__getitems__`` already returns the batch."""
    return batch


def _strip_opacus(adapter: Adapter) -> None:
    """Remove attributes Opacus leaves on the adapter's parameters and submodules."""
    for p in adapter.parameters():
        for attr in ("grad_sample", "_forward_counter", "_current_grad_sample", "_norm_sample"):
            if hasattr(p, attr):
                delattr(p, attr)
        for attr in ("summed_grad", "_processed"):
            if hasattr(p, attr):
                delattr(p, attr)
        p.grad = None
    for module in adapter.modules():
        for attr in ("activations", "max_batch_len"):
            if attr in module.__dict__:
                delattr(module, attr)


def _train_dp(
    adapter: Adapter,
    queries: torch.Tensor,
    positives: torch.Tensor,
    documents: torch.Tensor,
    config: TrainConfig,
    dp: DPConfig,
    on_epoch: Callable[[int, float], None] | None,
    negatives: torch.Tensor | None = None,
) -> TrainReport:
    from opacus import PrivacyEngine

    seed = dp.noise_seed if dp.noise_seed is not None else secrets.randbits(63)
    sampling_generator = torch.Generator().manual_seed(seed)
    noise_generator = torch.Generator().manual_seed(seed ^ 0x5EED_0F_D0_1CE)
    loader = DataLoader(
        PackedRecords(queries, positives),
        batch_size=config.batch_size,
        collate_fn=batch_as_is,
        generator=sampling_generator,
    )
    criterion: CorpusSoftmaxLoss | UnitSoftmaxLoss
    if positives.ndim == 1 and negatives is None:
        criterion = CorpusSoftmaxLoss(documents, temperature=config.temperature)
    else:
        criterion = UnitSoftmaxLoss(documents, temperature=config.temperature, negatives=negatives)
    optimizer = _make_optimizer([p for p in adapter.parameters() if p.requires_grad], config)
    with warnings.catch_warnings():
        # "Secure RNG turned off": the generators above are seeded from OS entropy.
        warnings.filterwarnings("ignore", message=".*Secure RNG.*")
        engine = PrivacyEngine(accountant=_OPACUS_ACCOUNTANT)
        made = engine.make_private(
            module=adapter,
            optimizer=optimizer,
            criterion=criterion,
            data_loader=loader,
            noise_multiplier=float(dp.noise_multiplier),
            max_grad_norm=float(dp.max_grad_norm),
            poisson_sampling=True,
            grad_sample_mode=dp.grad_sample_mode,
            noise_generator=noise_generator,
        )
    if dp.grad_sample_mode == "ghost":
        model, dp_optimizer, dp_criterion, dp_loader = made
    else:
        model, dp_optimizer, dp_loader = made
        dp_criterion = criterion
    sample_rate = float(dp_loader.sample_rate)
    averager = IterateAverager(
        [p for p in adapter.parameters() if p.requires_grad],
        config.averaging,
        total_steps=config.epochs * len(dp_loader),
    )
    try:
        with warnings.catch_warnings():
            # The queries need no gradient, so Opacus's full backward hooks fire on the
            # module outputs: all that per-sample gradients of the parameters need.
            warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")
            losses = _dp_epochs(
                model, dp_optimizer, dp_criterion, dp_loader, config.epochs, on_epoch, averager
            )
    finally:
        model.to_standard_module()
        _strip_opacus(adapter)
    # Post-processing of the released iterates: no extra privacy cost.
    averager.apply()
    steps = sum(int(s) for _, _, s in engine.accountant.history)
    return TrainReport(
        steps=steps,
        sample_rate=sample_rate,
        noise_multiplier=float(dp.noise_multiplier),
        max_grad_norm=float(dp.max_grad_norm),
        epsilon=_epsilon(dp, sample_rate=sample_rate, steps=steps),
        losses=losses,
        delta=float(dp.delta),
        grad_sample_mode=dp.grad_sample_mode,
        accountant=ACCOUNTANT,
    )


def _epsilon(dp: DPConfig, *, sample_rate: float, steps: int) -> float:
    """Epsilon of the steps taken; noise 0 clips without noise and has no privacy."""
    if dp.noise_multiplier == 0:
        return 0.0 if steps == 0 else math.inf
    return dpsgd_epsilon(
        noise_multiplier=dp.noise_multiplier, sample_rate=sample_rate, steps=steps, delta=dp.delta
    )


def _dp_epochs(
    model: nn.Module,
    dp_optimizer: Any,
    dp_criterion: Callable[[torch.Tensor, torch.Tensor], Any],
    dp_loader: DataLoader[Any],
    epochs: int,
    on_epoch: Callable[[int, float], None] | None,
    averager: IterateAverager,
) -> list[float]:
    losses: list[float] = []
    for epoch in range(epochs):
        total, count = 0.0, 0
        for batch_queries, batch_positives in dp_loader:
            dp_optimizer.zero_grad(set_to_none=True)
            size = int(batch_queries.shape[0])
            if size == 0:
                # An empty Poisson batch still takes its step: noise on a zero sum.
                for p in dp_optimizer.params:
                    p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)
                    p._norm_sample = torch.zeros(0, dtype=p.dtype)
                    p.grad = torch.zeros_like(p)
                dp_optimizer.step()
                averager.update()
                continue
            loss = dp_criterion(model(batch_queries), batch_positives)
            loss.backward()
            dp_optimizer.step()
            averager.update()
            total += float(loss.detach()) * size
            count += size
        losses.append(total / max(count, 1))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return losses
