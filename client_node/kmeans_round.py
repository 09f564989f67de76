"""One round of DP federated k-means on a member node, and its Flower handler.

The node step of :mod:`dp_training.federated_kmeans`, with the node's own bounds: the
round's privacy settings must pass the operator's ``NodePrivacy``, the node's ledger must
hold the round's charge (the k-means epsilon for the strictest observer, a fellow
member), then the node encodes its records (``kmeans-records`` in its data folder,
through the embedding cache, :class:`client_node.analysis.record_vectors.RecordEncoder`),
assigns them to the public centroids and adds its noise share to the per-centroid sums
and counts (:func:`~dp_training.dp_kmeans.noisy_node_statistics`). The ledger is charged
before anything leaves the node.

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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import Context, Error, Message
from numpy.typing import NDArray

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from client_node.statistics_reply import encrypted_reply, node_name_of, record_encoder
from dp_training.dp_kmeans import NoisyStatistics, calibrate_dp_kmeans, noisy_node_statistics
from embedding_core.app_logging import configure_logging
from embedding_core.cache import CACHE_DIR_ENV
from embedding_core.errors import FedembedError
from federation.kmeans_settings import KMeansContentKey, KMeansSettings
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings, server_round_of
from federation.wire import AggregationMode, ContentKey, MetricKey, NodeConfigKey
from privacy import Observer, PrivacyLedger
from privacy.observers import noise_ratio

if TYPE_CHECKING:
    pass

__all__ = ["KMeansRoundResult", "kmeans_train", "run_kmeans_round", "statistics_vector"]

logger = logging.getLogger(__name__)

EMBEDDING_CACHE_DIR = "embeddings"
"""The node's embedding cache for its k-means records, under its state folder."""
ERROR_CODE_NODE_REFUSED = 4001
"""As ``client_app.ERROR_CODE_NODE_REFUSED``: the node refused the round."""


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
    # As the node's training data: $FEDEMBED_CACHE_DIR, else the node's own state folder.
    cache = os.environ.get(CACHE_DIR_ENV) or node_dir / STATE_DIR / EMBEDDING_CACHE_DIR
    encoder = record_encoder(backend, Path(cache))
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
    if settings.aggregation != AggregationMode.CKKS:
        raise FedembedError(
            f"node {node_name} refuses a k-means round with aggregation="
            f"{settings.aggregation!r}: its statistics may leave only inside the CKKS sum",
            expected="aggregation='ckks'",
            fix="the coordinator runs k-means with aggregation='ckks'",
        )
    if not 1 <= server_round <= settings.num_server_rounds:
        raise FedembedError(
            f"round {server_round} is outside the run's {settings.num_server_rounds} rounds",
            expected=f"a round in 1..{settings.num_server_rounds}",
            fix="run the coordinator's ServerApp (it numbers every round)",
        )
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
    node_privacy.check_round(settings, node_name=node_name)
    calibration = calibrate_dp_kmeans(
        epsilon=settings.target_epsilon,
        delta=settings.target_delta,
        rounds=settings.num_server_rounds,
        shares=settings.dp_noise_shares,
        count_weight=kmeans.count_weight,
    )
    # The fellow member's per-round noise multiplier: sqrt(T) / mu. T full-batch charges
    # of it compose exactly (Gaussian DP) to the k-means epsilon for that observer.
    charged = calibration.noise_multiplier * noise_ratio(
        observer=Observer.FELLOW_MEMBER, shares=calibration.shares
    )
    own_noise = calibration.noise_std_share / calibration.sensitivity
    node_privacy.check_noise(own_noise, node_name=node_name)
    folder = Path(node_dir)
    ledger = PrivacyLedger.open(
        folder / STATE_DIR / LEDGER_FILE,
        node_id=node_name,
        max_epsilon=node_privacy.max_epsilon,
        delta=settings.target_delta,
    )
    ledger.check_new_round(run_id=settings.run_tag, round=server_round)
    ledger.check(noise_multiplier=charged, sample_rate=1.0, steps=1)
    vectors = _record_vectors(folder, kmeans, settings.encoder_backend)
    if vectors.shape[1] != centres.shape[1]:
        raise FedembedError(
            f"node {node_name}'s record vectors have {vectors.shape[1]} dimensions, the "
            f"centroids {centres.shape[1]}",
            expected="centroids from the run's encoder backend",
            fix="run the coordinator and the nodes with one encoder-backend",
        )
    statistics = noisy_node_statistics(
        vectors,
        centres,
        noise_std_share=calibration.noise_std_share,
        rng=rng if rng is not None else np.random.default_rng(),
        count_weight=kmeans.count_weight,
        corrections=shift,
    )
    spent = ledger.charge(
        noise_multiplier=charged,
        sample_rate=1.0,
        steps=1,
        run_id=settings.run_tag,
        round=server_round,
        observer=Observer.FELLOW_MEMBER,
    )
    logger.info("kmeans: node=%s round=%d epsilon=%.4f", node_name, server_round, spent)
    metrics = {
        MetricKey.UNIT_WEIGHT.value: 1.0,
        MetricKey.EPSILON.value: spent,
        MetricKey.NOISE_MULTIPLIER.value: calibration.noise_multiplier,
        MetricKey.NOISE_SHARE.value: own_noise,
        MetricKey.CHARGED_NOISE.value: charged,
        MetricKey.SAMPLE_RATE.value: 1.0,
        MetricKey.STEPS.value: 1.0,
    }
    return KMeansRoundResult(statistics=statistics, metrics=metrics)


def kmeans_train(msg: Message, context: Context) -> Message:
    """The ClientApp's ``train.kmeans`` handler: one encrypted, charged k-means step."""
    configure_logging()
    node_name = node_name_of(context)
    try:
        data_dir = context.node_config.get(NodeConfigKey.DATA_DIR.value)
        if not data_dir:
            raise FedembedError(
                f"node {node_name} has no data folder",
                expected="--node-config \"data-dir='/path/to/node'\"",
                fix="restart the SuperNode with data-dir in --node-config",
            )
        config = dict(msg.content.config_records[ContentKey.CONFIG.value])
        settings = RoundSettings.from_record(config)
        server_round = server_round_of(config, settings)
        kmeans = KMeansSettings.from_record(
            dict(msg.content.config_records[KMeansContentKey.SETTINGS.value])
        )
        state = msg.content.array_records[KMeansContentKey.STATE.value]
        result = run_kmeans_round(
            node_dir=str(data_dir),
            node_name=node_name,
            settings=settings,
            kmeans=kmeans,
            server_round=server_round,
            centroids=state["centroids"].numpy(),
            corrections=state["corrections"].numpy(),
            node_privacy=NodePrivacy.from_node_config(context.node_config),
        )
        vector = statistics_vector(result.statistics)
        if not np.all(np.isfinite(vector)):
            raise FedembedError(f"node {node_name}: non-finite k-means statistics")
        return encrypted_reply(msg, context, vector, result.metrics)
    except (FedembedError, KeyError) as exc:
        logger.warning("kmeans: node=%s refused: %s", node_name, exc)
        return Message(
            Error(code=ERROR_CODE_NODE_REFUSED, reason=f"{node_name}: {exc}"), reply_to=msg
        )
