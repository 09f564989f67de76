"""The coordinator's DP federated classifier head: rounds over the CKKS secure sum.

The coordinator step of :mod:`dp_training.federated_classifier`, on Flower's grid. The
head starts at zero (public); every round the coordinator sends the public head to every
node (message type ``train.classifier``) and each node answers with its clipped gradient
sum and record count plus its noise share, *encrypted and signed*
(:mod:`client_node.classifier_round`). The coordinator admits only signed contributions,
has every contributor endorse the set and one of them decrypt the *sum* of at least
``t`` (``dp-noise-shares``) of them (:class:`coordinator.statistics_rounds.CkksSecureSum`,
the checks of a training round), and takes a momentum step on the noisy mean gradient
(:func:`~dp_training.dp_classifier_head.update_head`). It never holds one node's
gradient: only ciphertexts and the noisy total. The loop is
:func:`coordinator.statistics_rounds.run_statistics_rounds`, shared with k-means.

A round with fewer than ``t`` admitted contributions is not decrypted and leaves the
head as it was. The final head (DP, public) is written to ``classifier_head.json`` in the
run folder with its labels, encoder backend and privacy; ``history.json`` holds the run
summary. A run that aggregated no round publishes no head and fails.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from flwr.app import Message
from flwr.serverapp import Grid
from numpy.typing import NDArray

from coordinator.statistics_rounds import (
    StatisticsRounds,
    round_messages,
    run_statistics_rounds,
    statistics_secure_sum,
)
from dp_training.dp_classifier_head import (
    DEFAULT_CLASSIFIER_COUNT_WEIGHT,
    DEFAULT_CLASSIFIER_MOMENTUM,
    DPClassifierCalibration,
    HeadState,
    calibrate_dp_classifier,
    update_head,
)
from federation.classifier_settings import (
    CLASSIFIER_MESSAGE_TYPE,
    ClassifierContentKey,
    ClassifierSettings,
    classifier_round_settings,
    parse_labels,
)
from federation.run_config import FederationConfig

__all__ = ["HEAD_FILE", "run_classifier_federation"]

logger = logging.getLogger(__name__)

HEAD_FILE = "classifier_head.json"
"""The published head: labels, weights, bias, encoder backend, privacy, rounds."""


def _settings(config: FederationConfig) -> ClassifierSettings:
    return ClassifierSettings(
        labels=parse_labels(config.classifier_labels),
        records=config.classifier_records,
        text_column=config.classifier_text_column,
        label_column=config.classifier_label_column,
        clip=config.classifier_clip,
        count_weight=DEFAULT_CLASSIFIER_COUNT_WEIGHT * config.classifier_clip,
    )


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


class _ClassifierRounds(StatisticsRounds):
    """The classifier rounds: the public head, the momentum step, the published head."""

    task = "classifier"
    label = "classifier"
    publication_file = HEAD_FILE
    summary_key = "head"

    def __init__(self, config: FederationConfig) -> None:
        self.config = config
        self.classifier = _settings(config)
        self.calibration = _calibration(config, self.classifier)
        self.state = HeadState.zeros(len(self.classifier.labels), config.embedding_dim)
        self.rounds = config.classifier_rounds
        self.length = self.state.velocity.size + 1

    def messages(self, nodes: list[int], server_round: int) -> list[Message]:
        """The public head (weights and bias) to every node."""
        return round_messages(
            nodes,
            settings=classifier_round_settings(self.config, self.config.round_settings()),
            server_round=server_round,
            message_type=CLASSIFIER_MESSAGE_TYPE,
            task_key=ClassifierContentKey.SETTINGS.value,
            task_record=self.classifier.to_record(),
            state_key=ClassifierContentKey.STATE.value,
            state={"weights": self.state.weights, "bias": self.state.bias},
        )

    def update(self, total: NDArray[np.float64], *, server_round: int) -> dict[str, Any]:
        """A momentum step on the noisy mean gradient (post-processing)."""
        size = self.state.velocity.size
        self.state = update_head(
            self.state,
            total[:size].reshape(self.state.velocity.shape),
            float(total[size]) / self.classifier.count_weight,
            learning_rate=self.config.classifier_learning_rate,
            momentum=DEFAULT_CLASSIFIER_MOMENTUM,
        )
        return {}

    def publication(self, rounds: list[dict[str, Any]]) -> dict[str, Any]:
        """The final head with its labels, encoder backend, privacy and rounds."""
        config, classifier, calibration, state = (
            self.config,
            self.classifier,
            self.calibration,
            self.state,
        )
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
    started = time.perf_counter()
    secure = statistics_secure_sum(config, "classifier")
    return run_statistics_rounds(
        grid, config, _ClassifierRounds(config), secure=secure, started=started
    )
