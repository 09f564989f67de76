"""Differentially private federated k-means: noisy per-centroid sums inside the secure sum.

One round of federated k-means is one Lloyd iteration split in two pure steps
(:mod:`analytics.kmeans`): every node assigns its records to the public centroids and
computes, per centroid, the sum of its records and their count; the coordinator moves
each centroid to (sum of the sums) / (sum of the counts). Here each node adds Gaussian
noise to both before they enter the secure sum (:func:`noisy_node_statistics`), so no
node's sums or counts are ever seen, and the coordinator's step
(:func:`update_from_noisy_sums`) post-processes the noisy total.

**Unit and sensitivity.** The unit is one record (one text) of one node; neighbouring
datasets differ by adding or removing one record (the convention of
:mod:`privacy.analysis.gdp`). Records are unit vectors; the node step scales any longer
vector down to norm 1, so the bound holds whatever it is given. A record falls into
exactly one centroid, and the other records' assignments do not depend on it (the
centroids are public), so adding it changes one row of the ``(k, d)`` sums by a vector
of norm <= 1 and one count by 1. The node releases the counts multiplied by a public
``count_weight`` ``w`` (then divides the noisy value by ``w``, a post-processing), so the
released vector ``(sums, w * counts)`` has L2 sensitivity ``sqrt(1 + w^2)``: ``sqrt(2)``
for ``w = 1``. With Gaussian noise of standard deviation ``sigma`` on every coordinate of
that vector, one round is ``mu``-GDP with ``mu = sqrt(1 + w^2) / sigma``; the sums carry
noise ``sigma`` per coordinate and the counts ``sigma / w``.

**Rounds.** The round's centroids are public (the previous round's output), so the
rounds are adaptively composed Gaussian mechanisms: ``T`` rounds are
``sqrt(T) * sqrt(1 + w^2) / sigma``-GDP (Dong, Roth and Su, "Gaussian Differential
Privacy", JRSS-B 2022, Corollary 3.3), converted exactly to (epsilon, delta)
(:func:`privacy.analysis.gdp.epsilon_for_mu`). Calibration inverts it
(:func:`calibrate_dp_kmeans`). The initial centroids must not come from private records: they
come from a public corpus (:func:`public_initial_centroids`) and cost nothing.

**Shares.** As in distributed DP-SGD (:mod:`dp_training.distributed_dp`, Truex et al.
AISec 2019; Kairouz, Liu and Steinke ICML 2021) each of the ``t`` nodes adds noise of
standard deviation ``sigma / sqrt(t)``, and the secure sum carries ``sigma``. A fellow
member knows its own share, so it faces ``sigma * sqrt(max(t - 1, 1) / t)``
(:mod:`privacy.observers`); the calibration meets the target epsilon for that strictest
observer, and every other observer (coordinator, outsiders) faces more noise.
Assumptions: secure aggregation of at least ``t`` nodes' shares every round, no collusion
between the coordinator and a member (ARCHITECTURE.md's threat model).

**Coordinator robustness.** Noisy counts can be small or negative: a centroid whose
noisy count is below ``min_count`` (by default 2 standard deviations of the count noise)
keeps its previous position. The noise also lengthens each noisy mean by ``d *
sigma^2 / count^2`` in expected squared norm, which would push records away from the
centroids of small clusters until they empty; the coordinator publishes that excess
with the centroids and the nodes subtract it from the squared distances when they
assign (:func:`assign_corrected`), an unbiased estimate of the distance to the true
mean. All of this is post-processing of the noisy sums: it costs no privacy.

:mod:`dp_training.federated_kmeans` runs the rounds in process (the reference loop).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from analytics.kmeans import assign, centroid_sums, kmeans
from dp_training.gaussian_rounds import (
    ComposedGaussianRounds,
    calibrate_gaussian_rounds,
    check_noise_share,
    check_positive,
)
from privacy.observers import Observer

__all__ = [
    "DEFAULT_COUNT_WEIGHT",
    "DPKMeansCalibration",
    "NoisyCentroids",
    "NoisyStatistics",
    "assign_corrected",
    "calibrate_dp_kmeans",
    "kmeans_sensitivity",
    "noisy_node_statistics",
    "public_initial_centroids",
    "update_from_noisy_sums",
]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

DEFAULT_COUNT_WEIGHT = 0.3
"""The counts' weight ``w``: sensitivity ``sqrt(1.09) = 1.044`` instead of ``sqrt(2)``.

The noise hurts a centroid through its sum (``d`` noisy coordinates) far more than
through its count (one), so spending less of the budget on the counts helps: for a
cluster mean of norm ``m`` in ``d`` dimensions the error is least near
``w^2 = m / sqrt(d)`` (``w`` about 0.2 for ``d = 384``); on BANKING77 (benchmark
``bench_federated_kmeans.py``) 0.3 matched or beat 1 in every setting tried.
"""
DEFAULT_MIN_COUNT_STDS = 2.0
"""A centroid moves only if its noisy count is at least this many count-noise stds."""


def kmeans_sensitivity(count_weight: float = DEFAULT_COUNT_WEIGHT) -> float:
    """L2 sensitivity of one node's ``(sums, count_weight * counts)`` to one record.

    Adding or removing one record of norm <= 1 moves one row of the sums by at most 1 and
    one count by 1: ``sqrt(1 + count_weight^2)`` (``sqrt(2)`` at weight 1).
    """
    weight = check_positive(count_weight, "count_weight", "a public weight > 0 on the counts")
    return math.sqrt(1.0 + weight * weight)


@dataclass(frozen=True)
class DPKMeansCalibration(ComposedGaussianRounds):
    """The noise of ``rounds`` DP k-means rounds for a target (epsilon, delta).

    Attributes:
        epsilon, delta: The target, met for ``observer`` after all ``rounds``.
        rounds: Noisy rounds ``T`` (each one Lloyd iteration).
        shares: ``t``, the nodes whose noise shares make up the secure sum (0: each
            node adds all of it, local DP).
        count_weight: ``w``, the public weight of the counts in the released vector.
        observer: Whose view the target is met for (the strictest by default).
        mu: The GDP parameter ``observer`` faces over all rounds (``mu_for`` of the target).
        sensitivity: ``sqrt(1 + w^2)``.
        noise_multiplier: Noise std of the secure sum over the sensitivity, per round.
        sum_noise_std: Noise std of each coordinate of the secure sum of the sums.
        count_noise_std: Noise std of each summed count (``sum_noise_std / w``).
        noise_std_share: Noise std each node adds to each coordinate of its sums
            (``sum_noise_std / sqrt(t)``); its counts get this over ``w``.
    """

    epsilon: float
    delta: float
    rounds: int
    shares: int
    count_weight: float
    observer: Observer
    mu: float
    sensitivity: float
    noise_multiplier: float
    sum_noise_std: float
    count_noise_std: float
    noise_std_share: float


def calibrate_dp_kmeans(
    *,
    epsilon: float,
    delta: float,
    rounds: int,
    shares: int,
    count_weight: float = DEFAULT_COUNT_WEIGHT,
    observer: Observer = Observer.FELLOW_MEMBER,
) -> DPKMeansCalibration:
    """The noise that makes ``rounds`` noisy k-means rounds (epsilon, delta)-DP per record.

    ``observer`` faces ``mu = mu_for(epsilon, delta)`` over ``rounds`` rounds, so its
    per-round noise multiplier is ``sqrt(rounds) / mu``; the secure sum's is that over the
    observer's share of the noise (:func:`privacy.observers.noise_ratio`).

    Raises:
        PrivacyParameterError: A parameter is out of range.
    """
    core = calibrate_gaussian_rounds(
        epsilon=epsilon,
        delta=delta,
        rounds=rounds,
        shares=shares,
        observer=observer,
        what="noisy k-means",
    )
    sensitivity = kmeans_sensitivity(count_weight)
    sum_std, share_std = core.noise_stds(sensitivity)
    return DPKMeansCalibration(
        epsilon=core.epsilon,
        delta=core.delta,
        rounds=core.rounds,
        shares=core.shares,
        count_weight=float(count_weight),
        observer=core.observer,
        mu=core.mu,
        sensitivity=sensitivity,
        noise_multiplier=core.noise_multiplier,
        sum_noise_std=sum_std,
        count_noise_std=sum_std / float(count_weight),
        noise_std_share=share_std,
    )


@dataclass(frozen=True)
class NoisyStatistics:
    """What one node puts into the round's secure sum.

    Attributes:
        sums: ``(k, d)`` per-centroid sums of the node's records plus noise.
        counts: ``(k,)`` per-centroid counts plus noise (real numbers, may be negative).
    """

    sums: FloatArray
    counts: FloatArray


@dataclass(frozen=True)
class NoisyCentroids:
    """The coordinator's output of one round: public, every node assigns with it.

    Attributes:
        centroids: ``(k, d)`` noisy means (or the previous centroid where kept).
        corrections: ``(k,)`` each centroid's expected squared-norm excess due to the
            noise, subtracted from the squared distances when assigning
            (:func:`assign_corrected`); zeros without DP.
        kept_previous: ``(k,)`` which centroids kept their previous position.
    """

    centroids: FloatArray
    corrections: FloatArray
    kept_previous: NDArray[np.bool_]


def _clip_rows(vectors: NDArray[np.floating]) -> FloatArray:
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (n, d) array, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1.0), dtype=np.float64)


def assign_corrected(
    vectors: NDArray[np.floating],
    centroids: NDArray[np.floating],
    corrections: NDArray[np.floating] | None = None,
) -> NDArray[np.int64]:
    """Each vector's centroid: the least ``||x - c_j||^2 - corrections_j`` (ties: lowest j).

    With a noisy mean ``c_j = m_j + e_j`` (noise ``e_j`` of expected squared norm
    ``b_j``), ``||x - c_j||^2 - b_j`` is an unbiased estimate of ``||x - m_j||^2``, so
    centroids made from few records are not pushed away by their noise. Without
    corrections this is :func:`analytics.kmeans.assign`.
    """
    matrix = np.asarray(vectors, dtype=np.float64)
    centres = np.asarray(centroids, dtype=np.float64)
    if corrections is None:
        return assign(matrix, centres)[0]
    shift = np.asarray(corrections, dtype=np.float64)
    if shift.shape != (centres.shape[0],):
        raise ValueError(f"corrections {shift.shape} do not match {centres.shape[0]} centroids")
    scores = np.einsum("ij,ij->i", centres, centres)[None, :] - 2.0 * (matrix @ centres.T)
    return np.asarray(np.argmin(scores - shift[None, :], axis=1), dtype=np.int64)


def noisy_node_statistics(
    vectors: NDArray[np.floating],
    centroids: NDArray[np.floating],
    *,
    noise_std_share: float,
    rng: np.random.Generator,
    count_weight: float = DEFAULT_COUNT_WEIGHT,
    corrections: NDArray[np.floating] | None = None,
) -> NoisyStatistics:
    """The node step: per-centroid sums and counts of its records, plus its noise share.

    Every record is first scaled to norm <= 1 (a no-op on unit vectors), which is what
    bounds the sensitivity, then assigned to a centroid (:func:`assign_corrected` with the
    previous round's public ``corrections``). The sums get ``N(0, noise_std_share^2)`` on
    every coordinate, the counts ``N(0, (noise_std_share / count_weight)^2)``: the node's
    share of noise on ``(sums, count_weight * counts)``. ``noise_std_share`` 0 gives the
    exact statistics (:func:`analytics.kmeans.centroid_sums`; federated k-means without
    DP). Nothing here is logged.
    """
    std = check_noise_share(noise_std_share)
    weight = check_positive(count_weight, "count_weight", "a public weight > 0 on the counts")
    matrix = _clip_rows(vectors)
    if corrections is None:
        sums, exact = centroid_sums(matrix, centroids)
        counts = exact.astype(np.float64)
    else:
        k = int(np.shape(centroids)[0])
        labels = assign_corrected(matrix, centroids, corrections)
        sums = np.zeros((k, matrix.shape[1]), dtype=np.float64)
        np.add.at(sums, labels, matrix)
        counts = np.bincount(labels, minlength=k).astype(np.float64)
    if std > 0:
        sums = sums + rng.normal(0.0, std, size=sums.shape)
        counts = counts + rng.normal(0.0, std / weight, size=counts.shape)
    return NoisyStatistics(sums=sums, counts=counts)


def update_from_noisy_sums(
    total_sums: NDArray[np.floating],
    total_counts: NDArray[np.floating],
    previous: NDArray[np.floating],
    *,
    min_count: float = 1.0,
    sum_noise_std: float = 0.0,
    previous_corrections: NDArray[np.floating] | None = None,
) -> NoisyCentroids:
    """The coordinator step on the secure sum: each centroid to its noisy mean.

    A centroid whose noisy count is below ``min_count`` (at least 1; small, zero or
    negative counts are noise) keeps its ``previous`` position and correction. Every
    other one moves to ``sum / count``; with ``sum_noise_std`` (the calibration's, public)
    its correction is the noise's expected squared norm on that mean,
    ``d * sum_noise_std^2 / count^2``, at most the mean's own squared norm.
    Post-processing only: no privacy cost.
    """
    sums = np.asarray(total_sums, dtype=np.float64)
    counts = np.asarray(total_counts, dtype=np.float64)
    previous_matrix = np.asarray(previous, dtype=np.float64)
    k = previous_matrix.shape[0]
    if sums.shape != previous_matrix.shape or counts.shape != (k,):
        raise ValueError(
            f"sums {sums.shape}, counts {counts.shape} and previous "
            f"{previous_matrix.shape} do not describe the same k centroids"
        )
    corrections = (
        np.zeros(k) if previous_corrections is None else np.array(previous_corrections, float)
    )
    filled = counts >= max(float(min_count), 1.0)
    updated = previous_matrix.copy()
    updated[filled] = sums[filled] / counts[filled, None]
    if sum_noise_std > 0:
        excess = sums.shape[1] * float(sum_noise_std) ** 2 / counts[filled] ** 2
        squared = np.einsum("ij,ij->i", updated[filled], updated[filled])
        corrections[filled] = np.minimum(excess, squared)
    else:
        corrections[filled] = 0.0
    return NoisyCentroids(centroids=updated, corrections=corrections, kept_previous=~filled)


def public_initial_centroids(
    public_vectors: NDArray[np.floating], k: int, *, seed: int = 0, n_init: int = 2
) -> FloatArray:
    """Initial centroids from a public corpus: k-means (k-means++ seeded) on it.

    The public corpus is text anyone may hold (an open corpus of the domain); no member's
    record is used, so the initialisation costs no privacy and every node may compute it.
    """
    return kmeans(public_vectors, k, n_init=n_init, seed=seed, progress=False).centroids
