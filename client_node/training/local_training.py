"""Local training of the query-side adapter on a node's interactions, optionally DP-SGD.

Without ``dp`` this is plain shuffled minibatch training. With a :class:`DPConfig` it is
DP-SGD through Opacus: Poisson sampling of records, per-record gradient clipping to
``max_grad_norm`` and Gaussian noise of standard deviation
``noise_multiplier * max_grad_norm`` on the summed gradient. The privacy unit is one
interaction record (see :mod:`client_node.training.interactions`); the reported
epsilon is Opacus's RDP accountant for the steps taken, at ``dp.delta``, for this one
call (the caller composes it across federated rounds).

Per-sample gradient norms come from Opacus's ghost clipping by default
(``grad_sample_mode="ghost"``): for a linear layer applied to one vector per record the
norm of record ``i``'s weight gradient is ``|g_i| |a_i|``, so no ``(b, d, d)``
per-sample gradient is materialised. It costs a second backward pass instead; see
``benchmarks/bench_dp_step.py`` for measurements of every mode.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from client_node.training.interactions import (
    CorpusSoftmaxLoss,
    InteractionSet,
    TrainingError,
)
from client_node.training.iterate_averaging import AveragingConfig, IterateAverager
from embedding_core.adapter import Adapter, AdapterSide

__all__ = [
    "GRAD_SAMPLE_MODES",
    "DPConfig",
    "TrainConfig",
    "TrainReport",
    "epsilon_for",
    "noise_for_budget",
    "train_adapter",
]

logger = logging.getLogger(__name__)

OptimizerName = Literal["adam", "sgd"]
GradSampleMode = Literal["ghost", "hooks", "functorch", "ew"]
GRAD_SAMPLE_MODES: tuple[str, ...] = ("ghost", "hooks", "functorch", "ew")
"""Opacus per-sample gradient modes accepted by :class:`DPConfig`."""

ACCOUNTANT = "rdp"


def _check_finite_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TrainingError(f"{name} must be a number, got {type(value).__name__}")
    ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise TrainingError(f"{name} must be a finite number {bound}, got {value}")


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TrainingError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of local training.

    Attributes:
        epochs: Passes over the records (with DP: ``epochs / sample_rate`` Poisson steps).
        batch_size: Records per step (with DP: the expected Poisson batch size).
        learning_rate: Optimizer step size.
        temperature: Softmax temperature on cosine scores.
        optimizer: ``adam`` (AdamW, decoupled weight decay) or ``sgd`` (momentum 0.9).
        weight_decay: Decay of the adapter's weights toward zero, i.e. toward the
            identity map for residual and low-rank adapters.
        seed: Seeds the shuffling of non-DP training. DP sampling and noise draw from
            :attr:`DPConfig.noise_seed` instead.
        averaging: Iterate averaging: training returns the average of the iterates
            instead of the last one (default: the last one). With DP it is
            post-processing of the released iterates and charges no extra epsilon
            (see :mod:`client_node.training.iterate_averaging`).
    """

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    temperature: float = 0.05
    optimizer: OptimizerName = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    averaging: AveragingConfig = field(default_factory=AveragingConfig)

    def __post_init__(self) -> None:
        _check_positive_int("epochs", self.epochs)
        _check_positive_int("batch_size", self.batch_size)
        _check_finite_positive("learning_rate", self.learning_rate)
        _check_finite_positive("temperature", self.temperature)
        _check_finite_positive("weight_decay", self.weight_decay, allow_zero=True)
        if self.optimizer not in ("adam", "sgd"):
            raise TrainingError(
                f"optimizer={self.optimizer!r} is not supported", expected="'adam' or 'sgd'"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TrainingError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.averaging, AveragingConfig):
            raise TrainingError(
                f"averaging must be an AveragingConfig, got {type(self.averaging).__name__}"
            )


@dataclass(frozen=True, kw_only=True)
class DPConfig:
    """DP-SGD settings (record-level privacy).

    Attributes:
        noise_multiplier: Noise standard deviation relative to ``max_grad_norm``
            (``0`` clips without noise: no privacy, epsilon is infinite). Calibrate it
            to a budget with :func:`noise_for_budget`.
        max_grad_norm: Per-record gradient clipping norm.
        delta: The delta at which epsilon is reported (e.g. ``1e-5``, below ``1/n``).
        grad_sample_mode: Opacus per-sample gradient mode; ``ghost`` (default) is the
            fastest measured here.
        noise_seed: Seeds Poisson sampling and noise. ``None`` (the default, and the
            only choice for real data) draws the seed from the OS's entropy: anyone who
            knows the seed can remove the noise. Noise comes from torch's generator, not
            Opacus's ``secure_mode`` (which needs ``torchcsprng``), so floating-point
            attacks on the Gaussian sampler are out of scope.
    """

    noise_multiplier: float
    max_grad_norm: float
    delta: float
    grad_sample_mode: GradSampleMode = "ghost"
    noise_seed: int | None = None

    def __post_init__(self) -> None:
        _check_finite_positive("noise_multiplier", self.noise_multiplier, allow_zero=True)
        _check_finite_positive("max_grad_norm", self.max_grad_norm)
        if isinstance(self.delta, bool) or not isinstance(self.delta, int | float):
            raise TrainingError(f"delta must be a number, got {type(self.delta).__name__}")
        if not 0 < self.delta < 1:
            raise TrainingError(
                f"delta must be in (0, 1), got {self.delta}",
                expected="a small delta, below 1 / number of records (e.g. 1e-5)",
            )
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise TrainingError(
                f"grad_sample_mode={self.grad_sample_mode!r} is not supported",
                expected=f"one of {list(GRAD_SAMPLE_MODES)}",
            )
        if self.noise_seed is not None and (
            isinstance(self.noise_seed, bool) or not isinstance(self.noise_seed, int)
        ):
            raise TrainingError(f"noise_seed must be an integer or None, got {self.noise_seed!r}")


@dataclass
class TrainReport:
    """What one :func:`train_adapter` call did.

    ``losses`` are the mean training loss per epoch on the private records; they are
    not privatised and must not leave the node.

    Attributes:
        steps: Optimizer steps taken.
        sample_rate: Per-step probability of a record being used (DP); for non-DP
            training the batch fraction ``batch_size / records``.
        noise_multiplier: DP noise multiplier (``None`` without DP).
        max_grad_norm: DP clipping norm (``None`` without DP).
        delta: Delta of ``epsilon`` (``None`` without DP).
        epsilon: Record-level epsilon of this call at ``delta`` (Opacus RDP
            accountant, ``steps`` compositions of the sampled Gaussian mechanism with
            ``sample_rate`` and ``noise_multiplier``); ``None`` without DP.
        losses: Mean training loss per epoch.
        seconds: Wall-clock time of the training.
        records: Number of interaction records.
        grad_sample_mode: The Opacus mode used (``None`` without DP).
        accountant: The accountant behind ``epsilon``.
    """

    steps: int
    sample_rate: float
    noise_multiplier: float | None
    max_grad_norm: float | None
    epsilon: float | None
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    records: int = 0
    delta: float | None = None
    grad_sample_mode: str | None = None
    accountant: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "steps": self.steps,
            "sample_rate": self.sample_rate,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "delta": self.delta,
            "epsilon": self.epsilon,
            "accountant": self.accountant,
            "grad_sample_mode": self.grad_sample_mode,
            "losses": list(self.losses),
            "seconds": self.seconds,
            "records": self.records,
        }


def noise_for_budget(
    *, target_epsilon: float, target_delta: float, sample_rate: float, steps: int
) -> float:
    """Noise multiplier so that ``steps`` DP-SGD steps spend ``target_epsilon``.

    Wraps ``opacus.accountants.utils.get_noise_multiplier`` with the RDP accountant
    (the one :func:`train_adapter` reports with).
    """
    from opacus.accountants.utils import get_noise_multiplier

    _check_finite_positive("target_epsilon", target_epsilon)
    if not 0 < target_delta < 1:
        raise TrainingError(f"target_delta must be in (0, 1), got {target_delta}")
    if not 0 < sample_rate <= 1:
        raise TrainingError(f"sample_rate must be in (0, 1], got {sample_rate}")
    _check_positive_int("steps", steps)
    try:
        with warnings.catch_warnings():
            # The bisection probes large noise levels whose best RDP order is the
            # largest one tried; Opacus warns about each, though the bound is valid.
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            sigma = get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=target_delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=ACCOUNTANT,
            )
    except ValueError as exc:
        raise TrainingError(
            f"no noise multiplier reaches epsilon={target_epsilon} at delta={target_delta} "
            f"over {steps} steps at sample rate {sample_rate}: {exc}",
            fix="raise the budget, or lower the steps or the sample rate",
        ) from exc
    return float(sigma)


def epsilon_for(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon of ``steps`` sampled-Gaussian steps (Opacus RDP accountant)."""
    from opacus.accountants import RDPAccountant

    if steps == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return float(accountant.get_epsilon(delta=delta))


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


def _make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.learning_rate, momentum=0.9, weight_decay=config.weight_decay
    )


class _Records(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Records as a map dataset with a bulk ``__getitems__`` (one gather per batch)."""

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


def _batch_as_is(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """Collate for :class:`_Records`: ``__getitems__`` already returns the batch."""
    return batch


def _shuffled_batches(
    n: int, batch_size: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


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
        data: The node's records and documents.
        config: Training hyper-parameters.
        dp: DP-SGD settings; ``None`` trains without privacy.
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
    queries = torch.from_numpy(np.ascontiguousarray(data.query_vectors))
    positives = torch.from_numpy(np.ascontiguousarray(data.positive_index))
    documents = torch.from_numpy(np.ascontiguousarray(data.doc_vectors))
    started = time.perf_counter()
    was_training = adapter.training
    adapter.train()
    try:
        if dp is None:
            report = _train_plain(adapter, queries, positives, documents, config, on_epoch)
        else:
            report = _train_dp(adapter, queries, positives, documents, config, dp, on_epoch)
    finally:
        adapter.train(was_training)
    report.seconds = time.perf_counter() - started
    report.records = len(data)
    logger.info(
        "train: records=%d steps=%d dp=%s epsilon=%s loss=%s seconds=%.1f",
        report.records,
        report.steps,
        dp is not None,
        None if report.epsilon is None else f"{report.epsilon:.3f}",
        None if not report.losses else f"{report.losses[-1]:.4f}",
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
) -> TrainReport:
    criterion = CorpusSoftmaxLoss(documents, temperature=config.temperature)
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


def _train_dp(
    adapter: Adapter,
    queries: torch.Tensor,
    positives: torch.Tensor,
    documents: torch.Tensor,
    config: TrainConfig,
    dp: DPConfig,
    on_epoch: Callable[[int, float], None] | None,
) -> TrainReport:
    from opacus import PrivacyEngine

    seed = dp.noise_seed if dp.noise_seed is not None else secrets.randbits(63)
    sampling_generator = torch.Generator().manual_seed(seed)
    noise_generator = torch.Generator().manual_seed(seed ^ 0x5EED_0F_D0_1CE)
    loader = DataLoader(
        _Records(queries, positives),
        batch_size=config.batch_size,
        collate_fn=_batch_as_is,
        generator=sampling_generator,
    )
    criterion = CorpusSoftmaxLoss(documents, temperature=config.temperature)
    optimizer = _make_optimizer([p for p in adapter.parameters() if p.requires_grad], config)
    with warnings.catch_warnings():
        # "Secure RNG turned off": the generators above are seeded from OS entropy.
        warnings.filterwarnings("ignore", message=".*Secure RNG.*")
        engine = PrivacyEngine(accountant=ACCOUNTANT)
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
        epsilon=epsilon_for(
            noise_multiplier=dp.noise_multiplier,
            sample_rate=sample_rate,
            steps=steps,
            delta=dp.delta,
        ),
        losses=losses,
        delta=float(dp.delta),
        grad_sample_mode=dp.grad_sample_mode,
        accountant=ACCOUNTANT,
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
