"""Differentially private federated classifier head: noisy clipped gradient sums.

The head is a linear softmax classifier on the shared encoder's vectors: for the public
label set of ``k`` classes it scores ``z = W x + b`` (``W`` ``(k, d)``, ``b`` ``(k,)``)
and predicts ``softmax(z)``. It is trained by full-batch noisy gradient descent, DP-SGD
with sample rate 1 (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016):
every round every node computes each of its records' gradient of the cross-entropy
``-log softmax(z)_y`` with respect to ``(W, b)``,

    g_i = (p_i - e_{y_i}) [x_i; 1]^T          (a (k, d + 1) matrix),

clips it to Frobenius norm ``C`` (``g_i * min(1, C / ||g_i||)``), sums them and adds its
share of Gaussian noise (:func:`noisy_node_gradient`). ``||g_i|| = ||p_i - e_y|| *
sqrt(||x_i||^2 + 1)`` so the per-record gradients are never materialised.

**Unit and sensitivity.** The unit is one record (one labelled text) of one node;
neighbouring datasets differ by adding or removing one record. The round's head is
public, so the other records' gradients do not depend on it: adding it changes the
node's clipped gradient sum by at most ``C`` in L2 norm, and its record count by 1. The
node releases the count multiplied by a public ``count_weight`` ``w`` (the coordinator's
normaliser), so the released vector ``(gradient sum, w * count)`` has L2 sensitivity
``sqrt(C^2 + w^2)`` (:func:`classifier_sensitivity`). A record whose label is not in the
public label set contributes nothing.

**Rounds and shares.** Exactly as :mod:`dp_training.dp_kmeans`: ``T`` rounds of Gaussian
noise of std ``sigma`` on that vector are ``sqrt(T) * sqrt(C^2 + w^2) / sigma``-GDP
(Dong, Roth and Su, "Gaussian Differential Privacy", JRSS-B 2022, Corollary 3.3),
converted exactly to (epsilon, delta) (:mod:`privacy.analysis.gdp`); each of the ``t``
nodes adds ``sigma / sqrt(t)`` and the calibration meets the target for the strictest
observer, a fellow member, who knows its own share (:mod:`privacy.observers`).
Assumptions: secure aggregation of at least ``t`` nodes' shares every round, no
collusion between the coordinator and a member (ARCHITECTURE.md's threat model).

**Coordinator step** (:func:`update_head`, post-processing, no privacy cost): the noisy
gradient sum is divided by the mean of the noisy counts released so far (the record
count does not change between rounds, so the mean of ``T`` noisy counts is a better
normaliser than the last one; at least 1), then a heavy-ball momentum step (Polyak
1964) moves ``(W, b)``. The head starts at zero (public).

:mod:`dp_training.federated_classifier` runs the rounds in process (the reference loop).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dp_training.gaussian_rounds import (
    ComposedGaussianRounds,
    calibrate_gaussian_rounds,
    check_noise_share,
    check_positive,
)
from privacy.observers import Observer

__all__ = [
    "DEFAULT_CLASSIFIER_CLIP",
    "DEFAULT_CLASSIFIER_COUNT_WEIGHT",
    "DEFAULT_CLASSIFIER_LEARNING_RATE",
    "DEFAULT_CLASSIFIER_MOMENTUM",
    "DPClassifierCalibration",
    "HeadState",
    "NoisyGradient",
    "calibrate_dp_classifier",
    "classifier_sensitivity",
    "clipped_gradient_sum",
    "label_targets",
    "noisy_node_gradient",
    "per_record_gradients",
    "update_head",
]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

DEFAULT_CLASSIFIER_CLIP = 1.0
"""``C``: a record's gradient norm is at most ``sqrt(2) * sqrt(2) = 2`` for unit vectors,
so 1 clips only badly classified records."""
DEFAULT_CLASSIFIER_COUNT_WEIGHT = 0.3
"""``w`` (runs use ``0.3 * C``): the count is one number against ``k (d + 1)`` gradient
coordinates, and the coordinator averages it over the rounds, so it gets a small share
of the budget (on BANKING77, w = 1 lost 6 accuracy points at epsilon 1 against 0.3)."""
DEFAULT_CLASSIFIER_LEARNING_RATE = 50.0
"""On the mean gradient, with momentum 0.9. BANKING77, 3 nodes, 10-30 rounds, one noise
seed (2026-12-07): without DP 200 was best (up to 5 points over 50 at 10 rounds), at
epsilon 8 100 was best by at most 5 points, at epsilon 1 50 was best and 200 lost up to
14 points: 50 is the choice that stays safe under noise."""
DEFAULT_CLASSIFIER_MOMENTUM = 0.9


def classifier_sensitivity(
    clip: float = DEFAULT_CLASSIFIER_CLIP, count_weight: float = DEFAULT_CLASSIFIER_COUNT_WEIGHT
) -> float:
    """L2 sensitivity of one node's ``(clipped gradient sum, w * count)`` to one record.

    One record moves the sum by a clipped gradient (norm <= ``clip``) and the count by 1:
    ``sqrt(clip^2 + count_weight^2)``.
    """
    c = check_positive(clip, "clip", "the per-record gradient clip norm C > 0")
    w = check_positive(count_weight, "count_weight", "a public weight > 0 on the count")
    return math.sqrt(c * c + w * w)


@dataclass(frozen=True)
class DPClassifierCalibration(ComposedGaussianRounds):
    """The noise of ``rounds`` noisy gradient rounds for a target (epsilon, delta).

    Attributes:
        epsilon, delta: The target, met for ``observer`` after all ``rounds``.
        rounds: Noisy full-batch rounds ``T``.
        shares: ``t``, the nodes whose noise shares make up the secure sum (0: local DP).
        clip: ``C``, the per-record gradient clip norm.
        count_weight: ``w``, the public weight of the count in the released vector.
        observer: Whose view the target is met for (the strictest by default).
        mu: The GDP parameter ``observer`` faces over all rounds.
        sensitivity: ``sqrt(C^2 + w^2)``.
        noise_multiplier: Noise std of the secure sum over the sensitivity, per round.
        sum_noise_std: Noise std of each coordinate of the secure sum of the gradients.
        count_noise_std: Noise std of the summed count (``sum_noise_std / w``).
        noise_std_share: Noise std each node adds to each gradient coordinate.
    """

    epsilon: float
    delta: float
    rounds: int
    shares: int
    clip: float
    count_weight: float
    observer: Observer
    mu: float
    sensitivity: float
    noise_multiplier: float
    sum_noise_std: float
    count_noise_std: float
    noise_std_share: float


def calibrate_dp_classifier(
    *,
    epsilon: float,
    delta: float,
    rounds: int,
    shares: int,
    clip: float = DEFAULT_CLASSIFIER_CLIP,
    count_weight: float = DEFAULT_CLASSIFIER_COUNT_WEIGHT,
    observer: Observer = Observer.FELLOW_MEMBER,
) -> DPClassifierCalibration:
    """The noise that makes ``rounds`` noisy gradient rounds (epsilon, delta)-DP per record.

    As :func:`dp_training.dp_kmeans.calibrate_dp_kmeans`: ``observer`` faces ``mu =
    mu_for(epsilon, delta)``, so its per-round noise multiplier is ``sqrt(rounds) / mu``
    and the secure sum's is that over the observer's share of the noise.

    Raises:
        PrivacyParameterError: A parameter is out of range.
    """
    core = calibrate_gaussian_rounds(
        epsilon=epsilon,
        delta=delta,
        rounds=rounds,
        shares=shares,
        observer=observer,
        what="noisy gradient",
    )
    sensitivity = classifier_sensitivity(clip, count_weight)
    sum_std, share_std = core.noise_stds(sensitivity)
    return DPClassifierCalibration(
        epsilon=core.epsilon,
        delta=core.delta,
        rounds=core.rounds,
        shares=core.shares,
        clip=float(clip),
        count_weight=float(count_weight),
        observer=core.observer,
        mu=core.mu,
        sensitivity=sensitivity,
        noise_multiplier=core.noise_multiplier,
        sum_noise_std=sum_std,
        count_noise_std=sum_std / float(count_weight),
        noise_std_share=share_std,
    )


def _inputs(
    weights: NDArray[np.floating],
    bias: NDArray[np.floating],
    vectors: NDArray[np.floating],
    targets: NDArray[np.integer],
) -> tuple[FloatArray, FloatArray]:
    """``(residuals p - e_y (n, k), inputs [x; 1] (n, d + 1))``, checked."""
    w = np.asarray(weights, dtype=np.float64)
    x = np.asarray(vectors, dtype=np.float64)
    y = np.asarray(targets)
    if w.ndim != 2 or np.shape(bias) != (w.shape[0],):
        raise ValueError(f"weights {w.shape} and bias {np.shape(bias)} are not a (k, d), (k,) head")
    if x.ndim != 2 or x.shape[1] != w.shape[1] or y.shape != (x.shape[0],):
        raise ValueError(f"vectors {x.shape} and targets {y.shape} do not fit a head {w.shape}")
    if y.size and (y.min() < 0 or y.max() >= w.shape[0]):
        raise ValueError(f"targets must index the head's {w.shape[0]} classes")
    scores = x @ w.T + np.asarray(bias, dtype=np.float64)
    scores -= scores.max(axis=1, keepdims=True)
    probabilities = np.exp(scores)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    probabilities[np.arange(len(y)), y] -= 1.0
    return probabilities, np.hstack([x, np.ones((x.shape[0], 1))])


def per_record_gradients(
    weights: NDArray[np.floating],
    bias: NDArray[np.floating],
    vectors: NDArray[np.floating],
    targets: NDArray[np.integer],
) -> FloatArray:
    """Each record's cross-entropy gradient ``(n, k, d + 1)``: ``[dW | db]`` per record.

    For tests and small inputs; the node uses :func:`clipped_gradient_sum`, which never
    builds this array.
    """
    residuals, inputs = _inputs(weights, bias, vectors, targets)
    return np.asarray(np.einsum("nk,nd->nkd", residuals, inputs), dtype=np.float64)


def clipped_gradient_sum(
    weights: NDArray[np.floating],
    bias: NDArray[np.floating],
    vectors: NDArray[np.floating],
    targets: NDArray[np.integer],
    *,
    clip: float,
) -> FloatArray:
    """The sum of the records' gradients, each clipped to norm ``clip``: ``(k, d + 1)``.

    Column ``d`` is the bias's gradient. Record ``i``'s gradient is the outer product
    ``r_i [x_i; 1]^T`` (``r_i = p_i - e_{y_i}``), of norm ``||r_i|| * ||[x_i; 1]||``; it
    is scaled by ``min(1, clip / norm)``.
    """
    bound = check_positive(clip, "clip", "the per-record gradient clip norm C > 0")
    residuals, inputs = _inputs(weights, bias, vectors, targets)
    norms = np.linalg.norm(residuals, axis=1) * np.linalg.norm(inputs, axis=1)
    scale = np.ones_like(norms)
    over = norms > bound
    scale[over] = bound / norms[over]
    return np.asarray((residuals * scale[:, None]).T @ inputs, dtype=np.float64)


@dataclass(frozen=True)
class NoisyGradient:
    """What one node puts into the round's secure sum.

    Attributes:
        gradient: ``(k, d + 1)`` clipped gradient sum plus noise (last column: bias).
        count: The node's record count plus noise over ``w`` (a real number).
    """

    gradient: FloatArray
    count: float

    def vector(self, count_weight: float) -> FloatArray:
        """The secure sum's vector: the gradient row by row, then ``w * count``."""
        return np.append(self.gradient.ravel(), count_weight * self.count).astype(np.float64)


def noisy_node_gradient(
    vectors: NDArray[np.floating],
    targets: NDArray[np.integer],
    weights: NDArray[np.floating],
    bias: NDArray[np.floating],
    *,
    clip: float,
    noise_std_share: float,
    rng: np.random.Generator,
    count_weight: float = DEFAULT_CLASSIFIER_COUNT_WEIGHT,
) -> NoisyGradient:
    """The node step: its clipped gradient sum and record count, plus its noise share.

    The gradient gets ``N(0, noise_std_share^2)`` on every coordinate, the count
    ``N(0, (noise_std_share / count_weight)^2)``: the node's share of noise on
    ``(gradient, w * count)``. ``noise_std_share`` 0 is federated training without DP.
    Nothing here is logged.
    """
    std = check_noise_share(noise_std_share)
    weight = check_positive(count_weight, "count_weight", "a public weight > 0 on the count")
    gradient = clipped_gradient_sum(weights, bias, vectors, targets, clip=clip)
    count = float(np.shape(vectors)[0])
    if std > 0:
        gradient = gradient + rng.normal(0.0, std, size=gradient.shape)
        count += float(rng.normal(0.0, std / weight))
    return NoisyGradient(gradient=gradient, count=count)


@dataclass
class HeadState:
    """The coordinator's head between rounds (all of it public: post-processing).

    Attributes:
        weights, bias: The head ``(k, d)``, ``(k,)``.
        velocity: ``(k, d + 1)`` momentum.
        counts: The noisy total counts released so far.
    """

    weights: FloatArray
    bias: FloatArray
    velocity: FloatArray
    counts: list[float] = field(default_factory=list)

    @classmethod
    def zeros(cls, classes: int, dim: int) -> HeadState:
        """The public starting point: every weight and bias 0."""
        return cls(np.zeros((classes, dim)), np.zeros(classes), np.zeros((classes, dim + 1)))

    @property
    def normaliser(self) -> float:
        """The mean of the noisy counts so far (the record count is fixed), at least 1."""
        return max(float(np.mean(self.counts)), 1.0) if self.counts else 1.0


def update_head(
    state: HeadState,
    total_gradient: NDArray[np.floating],
    total_count: float,
    *,
    learning_rate: float = DEFAULT_CLASSIFIER_LEARNING_RATE,
    momentum: float = DEFAULT_CLASSIFIER_MOMENTUM,
) -> HeadState:
    """The coordinator step on the secure sum: a momentum step on the noisy mean gradient.

    ``total_gradient`` ``(k, d + 1)`` and ``total_count`` are the decrypted sums (the
    count already divided by ``w``). Post-processing only: no privacy cost.
    """
    gradient = np.asarray(total_gradient, dtype=np.float64)
    if gradient.shape != state.velocity.shape:
        raise ValueError(f"gradient {gradient.shape} does not fit the head {state.velocity.shape}")
    counts = [*state.counts, float(total_count)]
    mean = max(float(np.mean(counts)), 1.0)
    velocity = momentum * state.velocity + gradient / mean
    step = learning_rate * velocity
    return HeadState(
        weights=state.weights - step[:, :-1],
        bias=state.bias - step[:, -1],
        velocity=velocity,
        counts=counts,
    )


def label_targets(
    labels: Sequence[str], label_set: Sequence[str]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Each label's index in the public ``label_set``, and which records are in it."""
    index = {name: i for i, name in enumerate(label_set)}
    kept = np.array([label in index for label in labels], dtype=bool)
    targets = np.array([index[x] for x in labels if x in index], dtype=np.int64)
    return targets, kept
