"""Iterate averaging of the adapter's parameters over the steps of one local training.

Two averages of the iterates ``theta_1 .. theta_T`` (the parameters after each
optimizer step) replace the last iterate as the result of training:

* ``tail``: the uniform mean of the iterates from step ``start`` on (Polyak-Ruppert
  averaging with burn-in; Polyak and Juditsky 1992, "Acceleration of stochastic
  approximation by averaging", SIAM J. Control Optim. 30(4)).
* ``ema``: an exponential moving average ``a_t = decay * a_{t-1} + (1 - decay) *
  theta_t`` started at ``a_1 = theta_1``, as De et al. 2022 use for DP-SGD ("Unlocking
  high-accuracy differentially private image classification through scale",
  arXiv:2204.13650, Sec. 3.2: parameter averaging with an EMA of the iterates).

Privacy: under DP-SGD every iterate ``theta_t`` is a function of the previous iterate
and the noised, clipped gradient sum of step ``t``; the accountant already charges
for releasing the whole sequence ``theta_1 .. theta_T`` (the adaptive composition of
the ``T`` sampled Gaussian mechanisms). Either average is a deterministic function of
that released sequence alone (it reads no record), so by the post-processing property
of differential privacy (Dwork and Roth 2014, Prop. 2.1; for Renyi DP, Mironov 2017,
Prop. 9) it has the same (epsilon, delta) guarantee as the sequence: averaging charges
nothing extra and changes no accounting.

Measured (``benchmarks/federated_recipe_sweep.py``, 3 SciFact nodes, full-batch DP-SGD
at epsilon 8): neither average beat the last iterate. There the noisy update is a
drift far from any stationary point, where the last iterate already sums every noisy
gradient with equal weight and an average down-weights the late ones, losing signal
faster than noise. Off by default.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from dp_training.interactions import TrainingError

__all__ = ["AVERAGING_MODES", "AveragingConfig", "IterateAverager"]

logger = logging.getLogger(__name__)

AveragingMode = Literal["none", "tail", "ema"]
AVERAGING_MODES: tuple[str, ...] = ("none", "tail", "ema")
"""Iterate averaging modes accepted by :class:`AveragingConfig`."""


@dataclass(frozen=True)
class AveragingConfig:
    """Which average of the iterates a training call returns.

    Attributes:
        mode: ``none`` (the last iterate), ``tail`` (uniform mean of the last
            ``tail_fraction`` of the steps) or ``ema`` (exponential moving average).
        tail_fraction: Share of the steps, counted from the end, that ``tail``
            averages (``1.0`` averages every iterate; at least the last one is used).
        ema_decay: Decay of ``ema``, in ``[0, 1)``; ``0`` is the last iterate.
    """

    mode: AveragingMode = "none"
    tail_fraction: float = 0.5
    ema_decay: float = 0.9

    def __post_init__(self) -> None:
        if self.mode not in AVERAGING_MODES:
            raise TrainingError(
                f"averaging mode {self.mode!r} is not supported",
                expected=f"one of {list(AVERAGING_MODES)}",
            )
        for name, value in (("tail_fraction", self.tail_fraction), ("ema_decay", self.ema_decay)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TrainingError(f"{name} must be a number, got {value!r}")
        if not (math.isfinite(self.tail_fraction) and 0 < self.tail_fraction <= 1):
            raise TrainingError(f"tail_fraction must be in (0, 1], got {self.tail_fraction}")
        if not (math.isfinite(self.ema_decay) and 0 <= self.ema_decay < 1):
            raise TrainingError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def start_step(self, total_steps: int) -> int:
        """First step (1-based) whose iterate the ``tail`` mean includes."""
        tail = max(1, math.ceil(self.tail_fraction * total_steps - 1e-9))
        return max(1, total_steps - tail + 1)


class IterateAverager:
    """Running average of parameters, updated after each optimizer step.

    Call :meth:`update` after every step (it reads the parameters' current values),
    then :meth:`apply` to overwrite the parameters with the average. Memory: one copy
    of the parameters.
    """

    def __init__(
        self, params: Sequence[nn.Parameter], config: AveragingConfig, *, total_steps: int
    ) -> None:
        if total_steps < 1:
            raise TrainingError(f"total_steps must be >= 1, got {total_steps}")
        self.params = list(params)
        self.config = config
        self.start = config.start_step(total_steps)
        self.step = 0
        self.count = 0
        self._average: list[torch.Tensor] | None = None

    def update(self) -> None:
        """Fold the parameters' current values (the latest iterate) into the average."""
        self.step += 1
        if self.config.mode == "none":
            return
        if self.config.mode == "tail" and self.step < self.start:
            return
        current = [p.detach() for p in self.params]
        self.count += 1
        if self._average is None:
            self._average = [c.clone() for c in current]
            return
        weight = 1.0 / self.count if self.config.mode == "tail" else 1.0 - self.config.ema_decay
        with torch.no_grad():
            for avg, cur in zip(self._average, current, strict=True):
                avg.add_(cur - avg, alpha=weight)

    def averaged(self) -> list[torch.Tensor] | None:
        """The average so far (``None`` before any averaged step or with ``none``)."""
        return None if self._average is None else [a.clone() for a in self._average]

    def apply(self) -> bool:
        """Overwrite the parameters with the average; ``False`` if there is none."""
        if self._average is None:
            return False
        with torch.no_grad():
            for p, avg in zip(self.params, self._average, strict=True):
                p.copy_(avg)
        logger.debug(
            "average: mode=%s iterates=%d of %d steps",
            self.config.mode,
            self.count,
            self.step,
        )
        return True
