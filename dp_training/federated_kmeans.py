"""Federated k-means in process: the reference loop over the DP k-means steps.

Every round each node runs :func:`~dp_training.dp_kmeans.noisy_node_statistics` on its
own records, the statistics are summed (the secure sum, here a plain sum), and the
coordinator runs :func:`~dp_training.dp_kmeans.update_from_noisy_sums`; the result is
public and every node assigns its records with it. The Flower wiring runs the same
steps with the sum inside secure aggregation; the benchmark
(``benchmarks/bench_federated_kmeans.py``) and the tests run this loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dp_training.dp_kmeans import (
    DEFAULT_COUNT_WEIGHT,
    DEFAULT_MIN_COUNT_STDS,
    DPKMeansCalibration,
    NoisyCentroids,
    assign_corrected,
    noisy_node_statistics,
    update_from_noisy_sums,
)
from dp_training.kmeans_reseeding import split_fullest
from privacy.analysis.parameters import PrivacyParameterError

__all__ = ["FederatedKMeansResult", "federated_kmeans"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FederatedKMeansResult:
    """The outcome of an in-process federated k-means run.

    Attributes:
        centroids: ``(k, d)`` final centroids (public: the last round's output).
        corrections: ``(k,)`` their noise corrections (assign with
            :func:`assign_corrected`); zeros without DP or without debiasing.
        rounds: Rounds run.
        kept_previous: Per round, how many centroids kept their previous position.
    """

    centroids: NDArray[np.float64]
    corrections: NDArray[np.float64]
    rounds: int
    kept_previous: tuple[int, ...]

    def assign(self, vectors: NDArray[np.floating]) -> NDArray[np.int64]:
        """Each record's cluster (a node runs this on its own records)."""
        return assign_corrected(vectors, self.centroids, self.corrections)


def federated_kmeans(
    node_vectors: Sequence[NDArray[np.floating]],
    initial: NDArray[np.floating],
    *,
    rounds: int,
    calibration: DPKMeansCalibration | None,
    rng: np.random.Generator,
    min_count_stds: float = DEFAULT_MIN_COUNT_STDS,
    debias: bool = True,
    reseed: bool = True,
) -> FederatedKMeansResult:
    """Run ``rounds`` rounds in process: every node's step, the sum, the coordinator's step.

    The reference loop the Flower wiring follows. ``calibration`` ``None`` is federated
    k-means without DP (exactly Lloyd's iterations on the pooled records); otherwise its
    ``rounds`` must equal ``rounds`` and its ``shares`` the number of nodes (or 0). A
    centroid keeps its previous position when its noisy count is under
    ``min_count_stds`` standard deviations of the count noise (and always under 1).
    ``debias`` assigns with the noise corrections (:func:`assign_corrected`); ``reseed``
    moves such kept centroids beside the fullest clusters, except after the last round
    (:func:`~dp_training.kmeans_reseeding.split_fullest`).
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise PrivacyParameterError(
            f"rounds must be an integer >= 1, got {rounds!r}",
            expected="the number of k-means rounds, at least 1",
        )
    if calibration is not None and (
        calibration.rounds != rounds or calibration.shares not in (0, len(node_vectors))
    ):
        raise PrivacyParameterError(
            f"the calibration is for {calibration.rounds} rounds and {calibration.shares} "
            f"shares, the run has {rounds} rounds and {len(node_vectors)} nodes",
            expected="a calibration made for this run's rounds and nodes",
            fix="calibrate with rounds and shares equal to the run's",
        )
    share, weight, min_count, sum_std = 0.0, DEFAULT_COUNT_WEIGHT, 1.0, 0.0
    if calibration is not None:
        share, weight = calibration.noise_std_share, calibration.count_weight
        min_count = max(1.0, min_count_stds * calibration.count_noise_std)
        sum_std = calibration.sum_noise_std if debias else 0.0
    current = NoisyCentroids(
        centroids=np.asarray(initial, dtype=np.float64).copy(),
        corrections=np.zeros(int(np.shape(initial)[0])),
        kept_previous=np.zeros(int(np.shape(initial)[0]), dtype=bool),
    )
    kept: list[int] = []
    for round_index in range(rounds):
        parts = [
            noisy_node_statistics(
                vectors,
                current.centroids,
                noise_std_share=share,
                rng=rng,
                count_weight=weight,
                corrections=current.corrections if sum_std > 0 else None,
            )
            for vectors in node_vectors
        ]
        counts = np.sum([p.counts for p in parts], axis=0)
        current = update_from_noisy_sums(
            np.sum([p.sums for p in parts], axis=0),
            counts,
            current.centroids,
            min_count=min_count,
            sum_noise_std=sum_std,
            previous_corrections=current.corrections,
        )
        kept.append(int(current.kept_previous.sum()))
        if reseed and round_index < rounds - 1:
            current, _ = split_fullest(current, counts, min_count=min_count, rng=rng)
    logger.debug("federated k-means: %d rounds, %d nodes", rounds, len(node_vectors))
    return FederatedKMeansResult(
        centroids=current.centroids,
        corrections=current.corrections,
        rounds=rounds,
        kept_previous=tuple(kept),
    )
