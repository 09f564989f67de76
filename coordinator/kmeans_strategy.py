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
:func:`~dp_training.dp_kmeans.update_from_noisy_sums`. It never holds one node's
statistics: only ciphertexts and the noisy total.

A round with fewer than ``t`` admitted contributions is not decrypted and keeps the
centroids. The final centroids (DP, public) are written to ``kmeans_centroids.json`` in
the run folder with the calibration and the rounds; ``history.json`` holds the run
summary. A run that aggregated no round publishes no centroids and fails.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from numpy.typing import NDArray

from coordinator.ckks_fedavg import CkksFedAvg
from coordinator.publication import FederationFailedError
from coordinator.run_folder import HISTORY_FILE, STATUS_FAILED, STATUS_SUCCEEDED
from dp_training.dp_kmeans import (
    DEFAULT_COUNT_WEIGHT,
    DEFAULT_MIN_COUNT_STDS,
    DPKMeansCalibration,
    calibrate_dp_kmeans,
    public_initial_centroids,
    update_from_noisy_sums,
)
from embedding_core.atomic_file import atomic_write_json
from embedding_core.errors import FedembedError
from federation.contributions import SignedContribution
from federation.kmeans_settings import (
    KMEANS_MESSAGE_TYPE,
    KMeansContentKey,
    KMeansSettings,
    kmeans_round_settings,
)
from federation.records import CkksField
from federation.run_config import FederationConfig
from federation.wire import SERVER_ROUND_KEY, ContentKey, as_int
from kits.loader import load_coordinator_kit

__all__ = ["CENTROIDS_FILE", "CkksSecureSum", "public_centroids", "run_kmeans_federation"]

logger = logging.getLogger(__name__)

CENTROIDS_FILE = "kmeans_centroids.json"
"""The published topic map: final centroids, corrections, calibration, rounds."""

_NODE_WAIT_S = 0.2


class CkksSecureSum(CkksFedAvg):
    """The CKKS secure sum of signed contributions, without FedAvg's model update.

    Reuses :class:`CkksFedAvg`'s admission (authorised signatures, once per node id),
    endorsement and decryption by a contributor; returns the decrypted total.
    """

    def secure_sum(
        self, grid: Grid, *, run_tag: str, server_round: int, replies: list[Message], length: int
    ) -> tuple[NDArray[np.float64] | None, int]:
        """The decrypted sum of the admitted contributions, and how many it holds.

        ``None`` when fewer than ``min_replies`` were admitted or a contributor did not
        endorse the set: nothing is decrypted then.
        """
        self._grid = grid
        self._run_tag = run_tag
        valid: list[Message] = []
        contributions: list[SignedContribution] = []
        seen: set[str] = set()
        for reply in replies:
            if reply.has_error():
                self._refuse(server_round, reply, str(reply.error.reason))
                continue
            record = reply.content.config_records.get(ContentKey.CKKS_UPDATE.value)
            if record is None or as_int(record.get(CkksField.LENGTH.value, -1)) != length:
                self._refuse(server_round, reply, f"no CKKS contribution of length {length}")
                continue
            contribution = self._admit(server_round, reply, record, seen)
            if contribution is not None:
                contributions.append(contribution)
                valid.append(reply)
        if not valid or len(valid) < self.min_replies:
            logger.warning(
                "kmeans: round=%d %d of the %d contributions needed; sum not decrypted",
                server_round,
                len(valid),
                max(self.min_replies, 1),
            )
            return None, len(valid)
        endorsements = self._endorse(server_round, valid, contributions)
        if endorsements is None:
            return None, len(valid)
        total = self._decrypt_sum(
            valid[0].metadata.src_node_id, server_round, contributions, endorsements, length
        )
        return total, len(valid)


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


def _wait_for_nodes(grid: Grid, needed: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= needed or time.monotonic() > deadline:
            return nodes
        time.sleep(_NODE_WAIT_S)


def _round_messages(
    nodes: list[int],
    *,
    config: FederationConfig,
    server_round: int,
    centroids: NDArray[np.float64],
    corrections: NDArray[np.float64],
) -> list[Message]:
    settings = kmeans_round_settings(config, config.round_settings())
    record = {**settings.to_record(), SERVER_ROUND_KEY: server_round}
    kmeans = KMeansSettings(
        k=config.kmeans_k,
        records=config.kmeans_records,
        text_column=config.kmeans_text_column,
        count_weight=DEFAULT_COUNT_WEIGHT,
    )
    return [
        Message(
            RecordDict(
                {
                    ContentKey.CONFIG.value: ConfigRecord(record),  # type: ignore[arg-type]
                    KMeansContentKey.SETTINGS.value: ConfigRecord(kmeans.to_record()),  # type: ignore[arg-type]
                    KMeansContentKey.STATE.value: ArrayRecord(
                        {
                            "centroids": Array(np.ascontiguousarray(centroids)),
                            "corrections": Array(np.ascontiguousarray(corrections)),
                        }
                    ),
                }
            ),
            dst_node_id=node,
            message_type=KMEANS_MESSAGE_TYPE,
        )
        for node in nodes
    ]


def _calibration(config: FederationConfig) -> DPKMeansCalibration:
    return calibrate_dp_kmeans(
        epsilon=config.kmeans_epsilon,
        delta=config.target_delta,
        rounds=config.kmeans_rounds,
        shares=config.dp_noise_shares,
        count_weight=DEFAULT_COUNT_WEIGHT,
    )


def _publication(
    config: FederationConfig,
    calibration: DPKMeansCalibration,
    centroids: NDArray[np.float64],
    corrections: NDArray[np.float64],
    rounds: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "task": "kmeans",
        "run_tag": config.run_tag,
        "k": config.kmeans_k,
        "dim": int(centroids.shape[1]),
        "encoder_backend": config.encoder_backend,
        "centroids": centroids.tolist(),
        "corrections": corrections.tolist(),
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
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    kit = load_coordinator_kit(config.coordinator_kit)
    secure = CkksSecureSum(
        FedAvg(),
        public_context=kit.ckks_public_context,
        authorized_nodes=kit.authorized_nodes,
        min_replies=max(config.dp_noise_shares, 1),
        timeout=config.round_timeout,
    )
    calibration = _calibration(config)
    min_count = max(1.0, DEFAULT_MIN_COUNT_STDS * calibration.count_noise_std)
    centroids = public_centroids(config)
    corrections = np.zeros(config.kmeans_k)
    length = int(centroids.size + config.kmeans_k)
    rounds: list[dict[str, Any]] = []
    for server_round in range(1, config.kmeans_rounds + 1):
        nodes = _wait_for_nodes(grid, config.min_nodes, config.round_timeout)
        messages = _round_messages(
            nodes,
            config=config,
            server_round=server_round,
            centroids=centroids,
            corrections=corrections,
        )
        replies = list(grid.send_and_receive(messages, timeout=config.round_timeout))
        total, admitted = secure.secure_sum(
            grid, run_tag=config.run_tag, server_round=server_round, replies=replies, length=length
        )
        entry: dict[str, Any] = {"round": server_round, "nodes": admitted, "released": False}
        if total is not None:
            update = update_from_noisy_sums(
                total[: centroids.size].reshape(centroids.shape),
                total[centroids.size :],
                centroids,
                min_count=min_count,
                sum_noise_std=calibration.sum_noise_std,
                previous_corrections=corrections,
            )
            centroids, corrections = update.centroids, update.corrections
            entry.update(released=True, kept_previous=int(update.kept_previous.sum()))
        rounds.append(entry)
        logger.info(
            "kmeans: round=%d nodes=%d released=%s", server_round, admitted, entry["released"]
        )
    summary: dict[str, Any] = {
        "task": "kmeans",
        "run_tag": config.run_tag,
        "rounds": rounds,
        "refusals": secure.refusals,
        "seconds": time.perf_counter() - started,
    }
    if not any(r["released"] for r in rounds):
        reason = f"no k-means round of {config.kmeans_rounds} was aggregated"
        summary.update(status=STATUS_FAILED, reason=reason)
        atomic_write_json(out_dir / HISTORY_FILE, summary)
        raise FederationFailedError(
            reason,
            expected=f"at least max(dp-noise-shares, 1) = {secure.min_replies} nodes answering",
            fix="see the refusals in history.json; the nodes' logs name their reasons",
        )
    atomic_write_json(
        out_dir / CENTROIDS_FILE,
        _publication(config, calibration, centroids, corrections, rounds),
    )
    summary.update(status=STATUS_SUCCEEDED, centroids=str(out_dir / CENTROIDS_FILE))
    atomic_write_json(out_dir / HISTORY_FILE, summary)
    logger.info("kmeans: published %s", out_dir / CENTROIDS_FILE)
    return summary
