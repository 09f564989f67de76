"""Hyper-parameters and report of local training (plain and DP-SGD).

:class:`TrainConfig` holds the optimisation settings shared by plain and DP-SGD
training (and names the optimizer :func:`_make_optimizer` builds); :class:`DPConfig`
adds the DP-SGD settings (privacy unit: a group of records, see
:mod:`dp_training.privacy_unit`); :class:`TrainReport` is what one
:func:`~dp_training.local_training.train_adapter` call returns. Every field is
validated on construction and a bad value raises
:class:`~dp_training.interactions.TrainingError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from dp_training.interactions import TrainingError
from dp_training.iterate_averaging import AveragingConfig

__all__ = [
    "GRAD_SAMPLE_MODES",
    "DPConfig",
    "TrainConfig",
    "TrainReport",
]

OptimizerName = Literal["adam", "sgd"]
GradSampleMode = Literal["ghost", "hooks", "functorch", "ew"]
GRAD_SAMPLE_MODES: tuple[str, ...] = ("ghost", "hooks", "functorch", "ew")
"""Opacus per-sample gradient modes accepted by :class:`DPConfig`."""


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
        epochs: Passes over the records (with DP: over the privacy units,
            ``epochs / sample_rate`` Poisson steps).
        batch_size: Records per step (with DP: the expected Poisson batch size in
            privacy units).
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
            (see :mod:`dp_training.iterate_averaging`).
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
    """DP-SGD settings; the privacy unit is the data's unit (all records of one query or person).

    Attributes:
        noise_multiplier: Noise standard deviation relative to ``max_grad_norm``
            (``0`` clips without noise: no privacy, epsilon is infinite). Calibrate it
            to a budget with :func:`privacy.noise_multiplier_for`.
        max_grad_norm: Clipping norm of one unit's summed gradient.
        delta: The delta at which epsilon is reported (e.g. ``1e-5``, below ``1/units``).
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
        sample_rate: Per-step probability of a privacy unit being used (DP); for
            non-DP training the batch fraction ``batch_size / records``.
        noise_multiplier: DP noise multiplier (``None`` without DP).
        max_grad_norm: DP clipping norm (``None`` without DP).
        delta: Delta of ``epsilon`` (``None`` without DP).
        epsilon: Epsilon of this call at ``delta`` for one privacy unit (all records of
            one query or person; not the node's documents): the node ledger's
            accountant (:func:`privacy.dpsgd_epsilon`) over ``steps`` compositions of
            the sampled Gaussian mechanism with ``sample_rate`` and
            ``noise_multiplier``; ``None`` without DP.
        losses: Mean training loss per epoch.
        seconds: Wall-clock time of the training.
        records: Number of interaction records.
        units: Number of privacy units (groups of records) DP-SGD sampled over.
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
    units: int = 0
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
            "units": self.units,
        }


def _make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.learning_rate, momentum=0.9, weight_decay=config.weight_decay
    )
