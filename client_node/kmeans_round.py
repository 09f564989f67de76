"""One round of DP federated k-means on a member node, and its Flower handler.

The node step of :mod:`dp_training.federated_kmeans`, with the node's own bounds: the
round's privacy settings must pass the operator's ``NodePrivacy``, the node's ledger must
hold the round's charge (the k-means epsilon for the strictest observer, a fellow
member), then the node encodes its records (``kmeans-records`` in its data folder,
through the embedding cache, :class:`client_node.analysis.record_vectors.RecordEncoder`),
assigns them to the public centroids and adds its noise share to the per-centroid sums
and counts (:func:`~dp_training.dp_kmeans.noisy_node_statistics`). The ledger is charged
before anything leaves the node (the guards and the charge:
:mod:`client_node.statistics_round`, shared with the classifier head).

:func:`kmeans_train` (the ClientApp's ``train`` action ``kmeans``) sends them only
inside the CKKS secure sum: it encrypts ``(sums, counts)`` under the consortium key and
signs and records the contribution exactly as a training update
(:func:`client_node.ckks_contribution.sign_and_record`), so the node's endorsement and
decryption rules (a sum of at least ``t`` signed contributions, its own among them, once
per round) hold for k-means as they do for training. No plaintext statistic, count or
record leaves the node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Context, Message
from numpy.typing import NDArray

from client_node.statistics_reply import EMBEDDING_CACHE_DIR, node_cache_dir, record_encoder
from client_node.statistics_round import (
    StatisticsRequest,
    StatisticsTask,
    charged_statistics_round,
    check_statistics_round,
    statistics_handler,
)
from dp_training.dp_kmeans import (
    DPKMeansCalibration,
    NoisyStatistics,
    calibrate_dp_kmeans,
    noisy_node_statistics,
)
from embedding_core.errors import FedembedError
from federation.kmeans_settings import KMeansContentKey, KMeansSettings
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings

__all__ = [
    "EMBEDDING_CACHE_DIR",
    "KMEANS_TASK",
    "KMeansRoundResult",
    "kmeans_train",
    "run_kmeans_round",
    "statistics_vector",
]

logger = logging.getLogger(__name__)

KMEANS_TASK = StatisticsTask(
    name="kmeans", label="k-means", released="statistics", coordinator_runs="k-means"
)


@dataclass(frozen=True)
class KMeansRoundResult:
    """The node's noisy statistics (for the secure sum only) and its privacy metrics."""

    statistics: NoisyStatistics
    metrics: dict[str, float]


def statistics_vector(statistics: NoisyStatistics) -> NDArray[np.float64]:
    """What enters the secure sum: the ``(k, d)`` sums row by row, then the ``k`` counts."""
    return np.concatenate([statistics.sums.ravel(), statistics.counts]).astype(np.float64)


def _record_vectors(node_dir: Path, kmeans: KMeansSettings, backend: str) -> NDArray[np.float32]:
    """The node's records (``kmeans-records`` in its data folder), encoded through the cache."""
    from analytics import load_labelled_texts

    records = load_labelled_texts(node_dir / kmeans.records, text_column=kmeans.text_column)
    encoder = record_encoder(backend, node_cache_dir(node_dir))
    return encoder.encode(list(records.texts), what="k-means records")


def run_kmeans_round(
    *,
    node_dir: str | Path,
    node_name: str,
    settings: RoundSettings,
    kmeans: KMeansSettings,
    server_round: int,
    centroids: NDArray[np.floating],
    corrections: NDArray[np.floating],
    node_privacy: NodePrivacy,
    rng: np.random.Generator | None = None,
) -> KMeansRoundResult:
    """The node's k-means step for round ``server_round``, charged to its ledger.

    ``rng`` draws the noise share (default: seeded by the operating system; a test may
    pass its own).

    Raises:
        RoundRefusedError: The round asks for less privacy than the operator allows.
        BudgetExceededError: The round would take the node past its privacy budget.
        LedgerError: This round of this run was charged before (a replay).
        FedembedError: Not CKKS, malformed centroids, or no readable records.
        In every case nothing is released and nothing is charged.
    """
    check_statistics_round(KMEANS_TASK, settings, node_name=node_name, server_round=server_round)
    centres = np.asarray(centroids, dtype=np.float64)
    shift = np.asarray(corrections, dtype=np.float64)
    if centres.ndim != 2 or centres.shape[0] != kmeans.k or shift.shape != (kmeans.k,):
        raise FedembedError(
            f"the coordinator's centroids {centres.shape} / corrections {shift.shape} do "
            f"not describe k={kmeans.k} centroids",
            fix="run the coordinator's ServerApp",
        )
    if not (np.all(np.isfinite(centres)) and np.all(np.isfinite(shift))):
        raise FedembedError("the coordinator's centroids are not finite")
    folder = Path(node_dir)

    def calibrate() -> DPKMeansCalibration:
        return calibrate_dp_kmeans(
            epsilon=settings.target_epsilon,
            delta=settings.target_delta,
            rounds=settings.num_server_rounds,
            shares=settings.dp_noise_shares,
            count_weight=kmeans.count_weight,
        )

    def compute(calibration: DPKMeansCalibration) -> NoisyStatistics:
        vectors = _record_vectors(folder, kmeans, settings.encoder_backend)
        if vectors.shape[1] != centres.shape[1]:
            raise FedembedError(
                f"node {node_name}'s record vectors have {vectors.shape[1]} dimensions, the "
                f"centroids {centres.shape[1]}",
                expected="centroids from the run's encoder backend",
                fix="run the coordinator and the nodes with one encoder-backend",
            )
        return noisy_node_statistics(
            vectors,
            centres,
            noise_std_share=calibration.noise_std_share,
            rng=rng if rng is not None else np.random.default_rng(),
            count_weight=kmeans.count_weight,
            corrections=shift,
        )

    statistics, metrics = charged_statistics_round(
        KMEANS_TASK,
        node_dir=folder,
        node_name=node_name,
        settings=settings,
        server_round=server_round,
        node_privacy=node_privacy,
        calibrate=calibrate,
        compute=compute,
    )
    return KMeansRoundResult(statistics=statistics, metrics=metrics)


def _kmeans_step(
    msg: Message, request: StatisticsRequest
) -> tuple[NDArray[np.float64], dict[str, float]]:
    kmeans = KMeansSettings.from_record(
        dict(msg.content.config_records[KMeansContentKey.SETTINGS.value])
    )
    state = msg.content.array_records[KMeansContentKey.STATE.value]
    result = run_kmeans_round(
        node_dir=request.data_dir,
        node_name=request.node_name,
        settings=request.settings,
        kmeans=kmeans,
        server_round=request.server_round,
        centroids=state["centroids"].numpy(),
        corrections=state["corrections"].numpy(),
        node_privacy=request.node_privacy,
    )
    return statistics_vector(result.statistics), result.metrics


def kmeans_train(msg: Message, context: Context) -> Message:
    """The ClientApp's ``train.kmeans`` handler: one encrypted, charged k-means step."""
    return statistics_handler(msg, context, KMEANS_TASK, lambda request: _kmeans_step(msg, request))
