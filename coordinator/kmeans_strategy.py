"""The coordinator's DP federated k-means: rounds over the CKKS secure sum, then the map.

The coordinator step of :mod:`dp_training.federated_kmeans`, on Flower's grid. It seeds
the centroids from a public corpus (``kmeans-public-corpus``:
:func:`~dp_training.dp_kmeans.public_initial_centroids`, no member's record), then every
round sends the public centroids to every node (message type ``train.kmeans``); each node
answers with its noisy per-centroid sums and counts *encrypted and signed*
(:mod:`client_node.kmeans_round`). The coordinator admits only signed contributions, has
every contributor endorse the set and one of them decrypt the *sum* of at least ``t``
(``dp-noise-shares``) of them (the same checks as a training round,
:class:`coordinator.ckks_fedavg.CkksFedAvg`), and moves the centroids with
:func:`~dp_training.dp_kmeans.update_from_noisy_sums`, re-seeding (before every round but
the last) each centroid too empty to move beside one of the fullest clusters
(:func:`~dp_training.kmeans_reseeding.split_fullest`). It never holds one node's
statistics: only ciphertexts and the noisy total. The loop is
:func:`coordinator.statistics_rounds.run_statistics_rounds`, shared with the classifier.

A round with fewer than ``t`` admitted contributions is not decrypted and keeps the
centroids. The final centroids (DP, public) are written to ``kmeans_centroids.json`` in
the run folder with the calibration and the rounds; ``history.json`` holds the run
summary. A run that aggregated no round publishes no centroids and fails.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import numpy as np
from flwr.app import Message
from flwr.serverapp import Grid
from numpy.typing import NDArray

from coordinator.statistics_rounds import (
    CkksSecureSum,
    StatisticsRounds,
    round_messages,
    run_statistics_rounds,
    statistics_secure_sum,
)
from dp_training.dp_kmeans import (
    DEFAULT_COUNT_WEIGHT,
    DEFAULT_MIN_COUNT_STDS,
    DPKMeansCalibration,
    calibrate_dp_kmeans,
    public_initial_centroids,
    update_from_noisy_sums,
)
from dp_training.kmeans_reseeding import split_fullest
from embedding_core.errors import FedembedError
from federation.kmeans_settings import (
    KMEANS_MESSAGE_TYPE,
    KMeansContentKey,
    KMeansSettings,
    kmeans_round_settings,
)
from federation.run_config import FederationConfig

__all__ = ["CENTROIDS_FILE", "CkksSecureSum", "public_centroids", "run_kmeans_federation"]

logger = logging.getLogger(__name__)

CENTROIDS_FILE = "kmeans_centroids.json"
"""The published topic map: final centroids, corrections, calibration, rounds."""


def public_centroids(config: FederationConfig) -> NDArray[np.float64]:
    """The initial centroids: k-means on the public corpus's vectors (costs no privacy)."""
    from analytics import load_labelled_texts
    from embedding_core.cache import EmbeddingCache
    from embedding_core.encoder import Encoder

    corpus = load_labelled_texts(config.kmeans_public_corpus, text_column=config.kmeans_text_column)
    if len(corpus) < config.kmeans_k:
        raise FedembedError(
            f"run config kmeans-public-corpus={config.kmeans_public_corpus!r} has "
            f"{len(corpus)} texts, fewer than kmeans-k={config.kmeans_k}",
            expected="a public corpus of at least kmeans-k texts",
            fix="name a larger public corpus or lower kmeans-k",
        )
    encoder = Encoder.load(None, backend=config.encoder_backend)
    vectors = EmbeddingCache(None).get_or_encode(
        encoder, list(corpus.texts), what="k-means public corpus"
    )
    return public_initial_centroids(vectors, config.kmeans_k, seed=0)


def _calibration(config: FederationConfig) -> DPKMeansCalibration:
    return calibrate_dp_kmeans(
        epsilon=config.kmeans_epsilon,
        delta=config.target_delta,
        rounds=config.kmeans_rounds,
        shares=config.dp_noise_shares,
        count_weight=DEFAULT_COUNT_WEIGHT,
    )


class _KMeansRounds(StatisticsRounds):
    """The k-means rounds: the public centroids, the update, the published map."""

    task = "kmeans"
    label = "k-means"
    publication_file = CENTROIDS_FILE
    summary_key = "centroids"

    def __init__(self, config: FederationConfig, centroids: NDArray[np.float64]) -> None:
        self.config = config
        self.calibration = _calibration(config)
        self.min_count = max(1.0, DEFAULT_MIN_COUNT_STDS * self.calibration.count_noise_std)
        self.centroids = centroids
        self.corrections = np.zeros(config.kmeans_k)
        self.rounds = config.kmeans_rounds
        # Public randomness (the re-seeding's directions), reproducible from the run tag.
        self.public_rng = np.random.default_rng(
            int.from_bytes(hashlib.sha256(config.run_tag.encode()).digest()[:8], "big")
        )
        self.length = int(centroids.size + config.kmeans_k)
        self.settings = KMeansSettings(
            k=config.kmeans_k,
            records=config.kmeans_records,
            text_column=config.kmeans_text_column,
            count_weight=DEFAULT_COUNT_WEIGHT,
        )

    def messages(self, nodes: list[int], server_round: int) -> list[Message]:
        """The public centroids and corrections to every node."""
        return round_messages(
            nodes,
            settings=kmeans_round_settings(self.config, self.config.round_settings()),
            server_round=server_round,
            message_type=KMEANS_MESSAGE_TYPE,
            task_key=KMeansContentKey.SETTINGS.value,
            task_record=self.settings.to_record(),
            state_key=KMeansContentKey.STATE.value,
            state={"centroids": self.centroids, "corrections": self.corrections},
        )

    def update(self, total: NDArray[np.float64], *, server_round: int) -> dict[str, Any]:
        """Move the centroids to the noisy means; re-seed the empty ones (post-processing).

        Before every round but the last, a centroid too empty to move is re-seeded beside
        one of the fullest clusters (:func:`~dp_training.kmeans_reseeding.split_fullest`).
        """
        size = self.centroids.size
        counts = total[size:]
        update = update_from_noisy_sums(
            total[:size].reshape(self.centroids.shape),
            counts,
            self.centroids,
            min_count=self.min_count,
            sum_noise_std=self.calibration.sum_noise_std,
            previous_corrections=self.corrections,
        )
        reseeded = 0
        if server_round < self.rounds:
            update, reseeded = split_fullest(
                update, counts, min_count=self.min_count, rng=self.public_rng
            )
        self.centroids, self.corrections = update.centroids, update.corrections
        return {"kept_previous": int(update.kept_previous.sum()), "reseeded": reseeded}

    def publication(self, rounds: list[dict[str, Any]]) -> dict[str, Any]:
        """The final centroids with their calibration and the rounds."""
        config, calibration, centroids = self.config, self.calibration, self.centroids
        return {
            "task": "kmeans",
            "run_tag": config.run_tag,
            "k": config.kmeans_k,
            "dim": int(centroids.shape[1]),
            "encoder_backend": config.encoder_backend,
            "centroids": centroids.tolist(),
            "corrections": self.corrections.tolist(),
            "privacy": {
                "epsilon": calibration.epsilon,
                "delta": calibration.delta,
                "observer": calibration.observer.value,
                "unit": "record",
                "rounds": calibration.rounds,
                "noise_shares": calibration.shares,
                "count_weight": calibration.count_weight,
                "sum_noise_std": calibration.sum_noise_std,
                "count_noise_std": calibration.count_noise_std,
            },
            "rounds": rounds,
            "assign": "dp_training.dp_kmeans.assign_corrected(vectors, centroids, corrections)",
        }


def run_kmeans_federation(grid: Grid, config: FederationConfig) -> dict[str, object]:
    """Run the k-means rounds, publish the centroids; returns the run summary.

    Raises:
        FederationFailedError: No round was aggregated (no centroids are published).
    """
    config = config.with_run_tag(grid.run.run_id)
    started = time.perf_counter()
    secure = statistics_secure_sum(config, "kmeans")
    rounds = _KMeansRounds(config, public_centroids(config))
    return run_statistics_rounds(grid, config, rounds, secure=secure, started=started)
