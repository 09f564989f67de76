"""The coordinator's DP federated classifier head: rounds over the CKKS secure sum.

The coordinator step of :mod:`dp_training.federated_classifier`, on Flower's grid. The
head starts at zero (public); every round the coordinator sends the public head to every
node (message type ``train.classifier``) and each node answers with its clipped gradient
sum and record count plus its noise share, *encrypted and signed*
(:mod:`client_node.classifier_round`). The coordinator admits only signed contributions,
has every contributor endorse the set and one of them decrypt the *sum* of at least
``t`` (``dp-noise-shares``) of them (:class:`coordinator.kmeans_strategy.CkksSecureSum`,
the checks of a training round), and takes a momentum step on the noisy mean gradient
(:func:`~dp_training.dp_classifier_head.update_head`). It never holds one node's
gradient: only ciphertexts and the noisy total.

A round with fewer than ``t`` admitted contributions is not decrypted and leaves the
head as it was. The final head (DP, public) is written to ``classifier_head.json`` in the
run folder with its labels, encoder backend and privacy; ``history.json`` holds the run
summary. A run that aggregated no round publishes no head and fails.
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

from coordinator.kmeans_strategy import CkksSecureSum
from coordinator.publication import FederationFailedError
from coordinator.run_folder import HISTORY_FILE, STATUS_FAILED, STATUS_SUCCEEDED
from dp_training.dp_classifier_head import (
    DEFAULT_CLASSIFIER_COUNT_WEIGHT,
    DEFAULT_CLASSIFIER_MOMENTUM,
    DPClassifierCalibration,
    HeadState,
    calibrate_dp_classifier,
    update_head,
)
from embedding_core.atomic_file import atomic_write_json
from federation.classifier_settings import (
    CLASSIFIER_MESSAGE_TYPE,
    ClassifierContentKey,
    ClassifierSettings,
    classifier_round_settings,
    parse_labels,
)
from federation.run_config import FederationConfig
from federation.wire import SERVER_ROUND_KEY, ContentKey
from kits.loader import load_coordinator_kit

__all__ = ["HEAD_FILE", "run_classifier_federation"]

logger = logging.getLogger(__name__)

HEAD_FILE = "classifier_head.json"
"""The published head: labels, weights, bias, encoder backend, privacy, rounds."""

_NODE_WAIT_S = 0.2


def _wait_for_nodes(grid: Grid, needed: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= needed or time.monotonic() > deadline:
            return nodes
        time.sleep(_NODE_WAIT_S)


def _settings(config: FederationConfig) -> ClassifierSettings:
    return ClassifierSettings(
        labels=parse_labels(config.classifier_labels),
        records=config.classifier_records,
        text_column=config.classifier_text_column,
        label_column=config.classifier_label_column,
        clip=config.classifier_clip,
        count_weight=DEFAULT_CLASSIFIER_COUNT_WEIGHT * config.classifier_clip,
    )


def _round_messages(
    nodes: list[int],
    *,
    config: FederationConfig,
    classifier: ClassifierSettings,
    server_round: int,
    state: HeadState,
) -> list[Message]:
    settings = classifier_round_settings(config, config.round_settings())
    record = {**settings.to_record(), SERVER_ROUND_KEY: server_round}
    return [
        Message(
            RecordDict(
                {
                    ContentKey.CONFIG.value: ConfigRecord(record),  # type: ignore[arg-type]
                    ClassifierContentKey.SETTINGS.value: ConfigRecord(classifier.to_record()),  # type: ignore[arg-type]
                    ClassifierContentKey.STATE.value: ArrayRecord(
                        {
                            "weights": Array(np.ascontiguousarray(state.weights)),
                            "bias": Array(np.ascontiguousarray(state.bias)),
                        }
                    ),
                }
            ),
            dst_node_id=node,
            message_type=CLASSIFIER_MESSAGE_TYPE,
        )
        for node in nodes
    ]


def _calibration(
    config: FederationConfig, classifier: ClassifierSettings
) -> DPClassifierCalibration:
    return calibrate_dp_classifier(
        epsilon=config.classifier_epsilon,
        delta=config.target_delta,
        rounds=config.classifier_rounds,
        shares=config.dp_noise_shares,
        clip=classifier.clip,
        count_weight=classifier.count_weight,
    )


def _publication(
    config: FederationConfig,
    classifier: ClassifierSettings,
    calibration: DPClassifierCalibration,
    state: HeadState,
    rounds: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "task": "classifier",
        "run_tag": config.run_tag,
        "labels": list(classifier.labels),
        "dim": int(state.weights.shape[1]),
        "encoder_backend": config.encoder_backend,
        "weights": state.weights.tolist(),
        "bias": state.bias.tolist(),
        "privacy": {
            "epsilon": calibration.epsilon,
            "delta": calibration.delta,
            "observer": calibration.observer.value,
            "unit": "record",
            "rounds": calibration.rounds,
            "noise_shares": calibration.shares,
            "clip": calibration.clip,
            "count_weight": calibration.count_weight,
            "sensitivity": calibration.sensitivity,
            "sum_noise_std": calibration.sum_noise_std,
            "count_noise_std": calibration.count_noise_std,
        },
        "training": {
            "learning_rate": config.classifier_learning_rate,
            "momentum": DEFAULT_CLASSIFIER_MOMENTUM,
        },
        "rounds": rounds,
        "predict": "dp_training.classifier_head.ClassifierHead.load(path).predict(vectors)",
    }


def run_classifier_federation(grid: Grid, config: FederationConfig) -> dict[str, object]:
    """Run the classifier rounds, publish the head; returns the run summary.

    Raises:
        FederationFailedError: No round was aggregated (no head is published).
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
    classifier = _settings(config)
    calibration = _calibration(config, classifier)
    state = HeadState.zeros(len(classifier.labels), config.embedding_dim)
    size = state.velocity.size
    rounds: list[dict[str, Any]] = []
    for server_round in range(1, config.classifier_rounds + 1):
        nodes = _wait_for_nodes(grid, config.min_nodes, config.round_timeout)
        messages = _round_messages(
            nodes, config=config, classifier=classifier, server_round=server_round, state=state
        )
        replies = list(grid.send_and_receive(messages, timeout=config.round_timeout))
        total, admitted = secure.secure_sum(
            grid,
            run_tag=config.run_tag,
            server_round=server_round,
            replies=replies,
            length=size + 1,
        )
        entry: dict[str, Any] = {"round": server_round, "nodes": admitted, "released": False}
        if total is not None:
            state = update_head(
                state,
                total[:size].reshape(state.velocity.shape),
                float(total[size]) / classifier.count_weight,
                learning_rate=config.classifier_learning_rate,
                momentum=DEFAULT_CLASSIFIER_MOMENTUM,
            )
            entry["released"] = True
        rounds.append(entry)
        logger.info(
            "classifier: round=%d nodes=%d released=%s", server_round, admitted, entry["released"]
        )
    summary: dict[str, Any] = {
        "task": "classifier",
        "run_tag": config.run_tag,
        "rounds": rounds,
        "refusals": secure.refusals,
        "seconds": time.perf_counter() - started,
    }
    if not any(r["released"] for r in rounds):
        reason = f"no classifier round of {config.classifier_rounds} was aggregated"
        summary.update(status=STATUS_FAILED, reason=reason)
        atomic_write_json(out_dir / HISTORY_FILE, summary)
        raise FederationFailedError(
            reason,
            expected=f"at least max(dp-noise-shares, 1) = {secure.min_replies} nodes answering",
            fix="see the refusals in history.json; the nodes' logs name their reasons",
        )
    atomic_write_json(
        out_dir / HEAD_FILE, _publication(config, classifier, calibration, state, rounds)
    )
    summary.update(status=STATUS_SUCCEEDED, head=str(out_dir / HEAD_FILE))
    atomic_write_json(out_dir / HISTORY_FILE, summary)
    logger.info("classifier: published %s", out_dir / HEAD_FILE)
    return summary
