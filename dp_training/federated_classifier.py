"""Federated classifier head in process: the reference loop over the DP head steps.

Every round each node runs :func:`~dp_training.dp_classifier_head.noisy_node_gradient`
on its own records with the public head, the results are summed (the secure sum, here a
plain sum) and the coordinator runs :func:`~dp_training.dp_classifier_head.update_head`.
The Flower wiring (:mod:`coordinator.classifier_strategy`) runs the same steps with the
sum inside CKKS secure aggregation; the benchmark
(``benchmarks/bench_federated_classifier.py``) and the tests run this loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from dp_training.classifier_head import ClassifierHead
from dp_training.dp_classifier_head import (
    DEFAULT_CLASSIFIER_CLIP,
    DEFAULT_CLASSIFIER_COUNT_WEIGHT,
    DEFAULT_CLASSIFIER_LEARNING_RATE,
    DEFAULT_CLASSIFIER_MOMENTUM,
    DPClassifierCalibration,
    HeadState,
    noisy_node_gradient,
    update_head,
)
from privacy.analysis.parameters import PrivacyParameterError

__all__ = ["federated_classifier"]

logger = logging.getLogger(__name__)


def federated_classifier(
    node_data: Sequence[tuple[NDArray[np.floating], NDArray[np.integer]]],
    labels: Sequence[str],
    *,
    rounds: int,
    calibration: DPClassifierCalibration | None,
    rng: np.random.Generator,
    clip: float = DEFAULT_CLASSIFIER_CLIP,
    learning_rate: float = DEFAULT_CLASSIFIER_LEARNING_RATE,
    momentum: float = DEFAULT_CLASSIFIER_MOMENTUM,
) -> ClassifierHead:
    """Run ``rounds`` rounds in process: every node's step, the sum, the coordinator's step.

    ``node_data`` holds each node's ``(vectors, targets)`` (targets index ``labels``).
    ``calibration`` ``None`` trains without noise (clipped full-batch gradient descent on
    the pooled records, with ``clip``); otherwise its rounds must equal ``rounds``, its
    shares the number of nodes (or 0), and its clip is used.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise PrivacyParameterError(
            f"rounds must be an integer >= 1, got {rounds!r}",
            expected="the number of gradient rounds, at least 1",
        )
    if calibration is not None and (
        calibration.rounds != rounds or calibration.shares not in (0, len(node_data))
    ):
        raise PrivacyParameterError(
            f"the calibration is for {calibration.rounds} rounds and {calibration.shares} "
            f"shares, the run has {rounds} rounds and {len(node_data)} nodes",
            expected="a calibration made for this run's rounds and nodes",
            fix="calibrate with rounds and shares equal to the run's",
        )
    share, weight = 0.0, DEFAULT_CLASSIFIER_COUNT_WEIGHT * clip
    if calibration is not None:
        share, weight, clip = (
            calibration.noise_std_share,
            calibration.count_weight,
            calibration.clip,
        )
    dim = int(np.shape(node_data[0][0])[1])
    state = HeadState.zeros(len(labels), dim)
    for _ in range(rounds):
        parts = [
            noisy_node_gradient(
                vectors,
                targets,
                state.weights,
                state.bias,
                clip=clip,
                noise_std_share=share,
                rng=rng,
                count_weight=weight,
            )
            for vectors, targets in node_data
        ]
        state = update_head(
            state,
            np.sum([p.gradient for p in parts], axis=0),
            float(sum(p.count for p in parts)),
            learning_rate=learning_rate,
            momentum=momentum,
        )
    logger.debug("federated classifier: %d rounds, %d nodes", rounds, len(node_data))
    return ClassifierHead(tuple(labels), state.weights, state.bias)
