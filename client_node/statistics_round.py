"""The node's side of one DP statistics round (k-means, the classifier head), in one place.

A statistics round (:mod:`client_node.kmeans_round`, :mod:`client_node.classifier_round`)
releases one noisy vector per node, only inside the CKKS secure sum. Every such round
passes the same guards before anything is computed (:func:`check_statistics_round`:
CKKS only, a round of the run) and the same privacy bookkeeping around the computation
(:func:`charged_statistics_round`): the operator's ``NodePrivacy`` must accept the
round's settings and the node's own noise share; the node's ledger must not have
charged this round before and must hold the round's charge; then the statistic is
computed and the ledger charged before anything leaves the node. The charge is the
noise a fellow member faces (it knows its own share), ``sqrt(T) / mu`` per round:
``T`` full-batch charges of it compose exactly (Gaussian DP; Dong, Roth and Su,
"Gaussian Differential Privacy", JRSS-B 2022, Corollary 3.3) to the task's epsilon for
that strictest observer (:mod:`dp_training.gaussian_rounds`).

:func:`statistics_handler` is the Flower ``train.<task>`` handler around a task's step:
the node's data folder, the round's settings and the encrypted reply
(:func:`client_node.statistics_reply.encrypted_reply`); any refusal becomes an ``Error``
reply naming the node, and nothing is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
from flwr.app import Context, Error, Message
from numpy.typing import NDArray

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from client_node.statistics_reply import encrypted_reply, node_name_of
from embedding_core.app_logging import configure_logging
from embedding_core.errors import FedembedError
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings, server_round_of
from federation.wire import (
    ERROR_CODE_NODE_REFUSED,
    AggregationMode,
    ContentKey,
    MetricKey,
    NodeConfigKey,
)
from privacy import Observer, PrivacyLedger
from privacy.observers import noise_ratio

__all__ = [
    "RoundCalibration",
    "StatisticsRequest",
    "StatisticsTask",
    "charged_statistics_round",
    "check_statistics_round",
    "statistics_handler",
]

logger = logging.getLogger(__name__)


ResultT = TypeVar("ResultT")


class RoundCalibration(Protocol):
    """What the node needs of a task's calibration (``DPKMeansCalibration``, ...)."""

    @property
    def noise_multiplier(self) -> float:
        """Noise std of the secure sum over the sensitivity, per round."""

    @property
    def shares(self) -> int:
        """``t``, the nodes whose noise shares make up the secure sum."""

    @property
    def sensitivity(self) -> float:
        """The L2 sensitivity of the released vector to one record."""

    @property
    def noise_std_share(self) -> float:
        """Noise std each node adds to each coordinate."""


CalibrationT = TypeVar("CalibrationT", bound=RoundCalibration)


@dataclass(frozen=True)
class StatisticsTask:
    """How a statistics task names itself to the node's operator and logs.

    Attributes:
        name: The log prefix and message action (``kmeans``, ``classifier``).
        label: The task in a sentence (``k-means``, ``classifier``).
        released: What the node releases (``statistics``, ``gradients``).
        coordinator_runs: What the coordinator runs, in a fix (``k-means``, ...).
    """

    name: str
    label: str
    released: str
    coordinator_runs: str


@dataclass(frozen=True)
class StatisticsRequest:
    """One ``train.<task>`` message, checked: the node, its folder, the round."""

    node_name: str
    data_dir: str
    settings: RoundSettings
    server_round: int
    node_privacy: NodePrivacy


def check_statistics_round(
    task: StatisticsTask, settings: RoundSettings, *, node_name: str, server_round: int
) -> None:
    """Refuse a round that is not CKKS or not a round of the run.

    Raises:
        FedembedError: Not CKKS, or ``server_round`` outside ``1..num_server_rounds``.
    """
    if settings.aggregation != AggregationMode.CKKS:
        raise FedembedError(
            f"node {node_name} refuses a {task.label} round with aggregation="
            f"{settings.aggregation!r}: its {task.released} may leave only inside the CKKS sum",
            expected="aggregation='ckks'",
            fix=f"the coordinator runs {task.coordinator_runs} with aggregation='ckks'",
        )
    if not 1 <= server_round <= settings.num_server_rounds:
        raise FedembedError(
            f"round {server_round} is outside the run's {settings.num_server_rounds} rounds",
            expected=f"a round in 1..{settings.num_server_rounds}",
            fix="run the coordinator's ServerApp (it numbers every round)",
        )


def charged_statistics_round(
    task: StatisticsTask,
    *,
    node_dir: Path,
    node_name: str,
    settings: RoundSettings,
    server_round: int,
    node_privacy: NodePrivacy,
    calibrate: Callable[[], CalibrationT],
    compute: Callable[[CalibrationT], ResultT],
) -> tuple[ResultT, dict[str, float]]:
    """``compute(calibration)`` under the node's bounds, charged; returns it and the metrics.

    The round's settings and the node's noise share must pass ``node_privacy``; the
    ledger must hold the charge and not have charged this round of this run. Nothing is
    charged if any check or ``compute`` fails.

    Raises:
        RoundRefusedError: The round asks for less privacy than the operator allows.
        BudgetExceededError: The round would take the node past its privacy budget.
        LedgerError: This round of this run was charged before (a replay).
    """
    node_privacy.check_round(settings, node_name=node_name)
    calibration = calibrate()
    # The fellow member's per-round noise multiplier: sqrt(T) / mu. T full-batch charges
    # of it compose exactly (Gaussian DP) to the task's epsilon for that observer.
    charged = calibration.noise_multiplier * noise_ratio(
        observer=Observer.FELLOW_MEMBER, shares=calibration.shares
    )
    own_noise = calibration.noise_std_share / calibration.sensitivity
    node_privacy.check_noise(own_noise, node_name=node_name)
    ledger = PrivacyLedger.open(
        node_dir / STATE_DIR / LEDGER_FILE,
        node_id=node_name,
        max_epsilon=node_privacy.max_epsilon,
        delta=settings.target_delta,
    )
    ledger.check_new_round(run_id=settings.run_tag, round=server_round)
    ledger.check(noise_multiplier=charged, sample_rate=1.0, steps=1)
    result = compute(calibration)
    spent = ledger.charge(
        noise_multiplier=charged,
        sample_rate=1.0,
        steps=1,
        run_id=settings.run_tag,
        round=server_round,
        observer=Observer.FELLOW_MEMBER,
    )
    logger.info("%s: node=%s round=%d epsilon=%.4f", task.name, node_name, server_round, spent)
    metrics = {
        MetricKey.UNIT_WEIGHT.value: 1.0,
        MetricKey.EPSILON.value: spent,
        MetricKey.NOISE_MULTIPLIER.value: calibration.noise_multiplier,
        MetricKey.NOISE_SHARE.value: own_noise,
        MetricKey.CHARGED_NOISE.value: charged,
        MetricKey.SAMPLE_RATE.value: 1.0,
        MetricKey.STEPS.value: 1.0,
    }
    return result, metrics


def statistics_handler(
    msg: Message,
    context: Context,
    task: StatisticsTask,
    step: Callable[[StatisticsRequest], tuple[NDArray[np.float64], dict[str, float]]],
) -> Message:
    """The ClientApp's ``train.<task>`` handler around ``step`` (vector and metrics).

    The vector goes out encrypted, signed and recorded; a refusal (``FedembedError``, a
    missing record) is answered with an ``Error`` naming the node, and nothing is sent.
    """
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
        kit_dir = context.node_config.get(NodeConfigKey.KIT_DIR.value)
        if kit_dir:  # the announced contribution set, checked before anything is charged
            from client_node.ckks_contribution import check_announced_set

            check_announced_set(msg, kit_dir=str(kit_dir))
        request = StatisticsRequest(
            node_name=node_name,
            data_dir=str(data_dir),
            settings=settings,
            server_round=server_round,
            node_privacy=NodePrivacy.from_node_config(context.node_config),
        )
        vector, metrics = step(request)
        if not np.all(np.isfinite(vector)):
            raise FedembedError(f"node {node_name}: non-finite {task.label} {task.released}")
        return encrypted_reply(msg, context, vector, metrics)
    except (FedembedError, KeyError) as exc:
        logger.warning("%s: node=%s refused: %s", task.name, node_name, exc)
        return Message(
            Error(code=ERROR_CODE_NODE_REFUSED, reason=f"{node_name}: {exc}"), reply_to=msg
        )
