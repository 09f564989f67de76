"""Distributed DP: each node adds a share of the noise, the secure sum holds all of it.

With secure aggregation nobody sees one node's update, only the sum over the round's
nodes. If every node adds Gaussian noise of standard deviation ``sigma * C / sqrt(t)``
to its clipped gradient sum, the sum over ``t`` or more nodes carries noise of standard
deviation at least ``sigma * C``: the Gaussian mechanism on the consortium's summed
gradient, with sensitivity ``C`` for one record of one node. That is centralised DP-SGD
on the union of the records, with one node's worth of noise instead of ``sqrt(nodes)``
times it (Truex et al., "A Hybrid Approach to Privacy-Preserving Federated Learning",
AISec 2019; Kairouz, Liu and Steinke, "The Distributed Discrete Gaussian Mechanism for
Federated Learning with Secure Aggregation", ICML 2021).

The argument needs the aggregate to be *linear* in each node's noisy sum, so a node takes
exactly one full-batch DP-SGD step per round (plain SGD, learning rate 1): its update is
``-(sum of clipped gradients + noise share) / n`` over its ``n`` units, and the node sends
``n`` times that, the noisy sum itself, inside the secure sum. The coordinator divides the
decrypted ``-(noisy consortium sum)`` by a denominator that is public (declared counts) or
itself inside the noisy sum (:mod:`federation.record_count_slot`), never by a private
count. The coordinator's optimiser (:mod:`coordinator.server_adam`) post-processes that.
Several local steps would make a node's update a non-linear function of its own small
noise, and the argument would not hold; so would scaling the step by its own norm, which
is why ``update-clip-norm`` must be 0 with shares.

Assumptions, stated wherever the epsilon is reported: secure aggregation (the coordinator
and the other nodes never see one node's update), at least ``t`` honest nodes adding their
share in every aggregated round (the coordinator refuses to aggregate fewer), and no
collusion between the coordinator and members (ARCHITECTURE.md's threat model). A node's own
update alone carries noise multiplier ``sigma / sqrt(t)``, which the node reports (metric
``noise-share``) beside the sum's (``noise-multiplier``).

The sum's ``sigma`` is what the coordinator and outsiders face. A fellow member knows its
own share, and the decrypting node is a member, so its view of another node's record
carries only ``sigma * sqrt(max(t - 1, 1) / t)`` (:mod:`privacy.observers`). A node
therefore calibrates the target epsilon to that view and lets the ``t`` shares add up to
``sigma = sigma_member / sqrt(max(t - 1, 1) / t)``: each node adds ``sqrt(3 / 2)`` times
the noise it added when the target was calibrated to the sum at ``t = 3``
(``sqrt(2)`` at ``t = 2``).
"""

from __future__ import annotations

import dataclasses
import math

from dp_training.interactions import TrainingError
from dp_training.iterate_averaging import AveragingConfig
from dp_training.train_config import TrainConfig

__all__ = ["distributed_step_config", "noise_share_multiplier"]

STEP_LEARNING_RATE = 1.0  # the update is the noisy mean gradient itself


def noise_share_multiplier(noise_multiplier: float, shares: int) -> float:
    """One node's noise multiplier when ``shares`` nodes' noise adds up to ``noise_multiplier``.

    ``shares`` = 0 means local DP (no sharing): the node adds all of it.
    """
    if shares < 0:
        raise TrainingError(f"noise shares must be >= 0, got {shares}")
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise TrainingError(f"noise multiplier must be > 0, got {noise_multiplier}")
    return noise_multiplier / math.sqrt(shares) if shares else noise_multiplier


def distributed_step_config(config: TrainConfig, records: int) -> TrainConfig:
    """``config`` turned into one full-batch plain SGD step with learning rate 1."""
    if records < 1:
        raise TrainingError(f"a distributed DP step needs records, got {records}")
    return dataclasses.replace(
        config,
        epochs=1,
        batch_size=max(records, config.batch_size),
        learning_rate=STEP_LEARNING_RATE,
        optimizer="sgd",
        weight_decay=0.0,
        averaging=AveragingConfig(),
    )
