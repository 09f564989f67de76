"""The settings of a federated classifier-head run: run-config keys, checks, their record.

A run with ``task = "classifier"`` trains a consortium-wide linear softmax head on the
shared encoder's vectors by DP full-batch gradient descent
(:mod:`dp_training.dp_classifier_head`) instead of training the adapter. Its run-config
keys (``[tool.flwr.app.config]`` / ``--run-config``)::

    task                          "classifier"
    classifier-labels             the PUBLIC label set: comma-separated class names
    classifier-rounds             noisy full-batch gradient rounds (>= 1; each costs privacy)
    classifier-epsilon            record-level epsilon of the whole run, for a fellow member
    classifier-records            the records file in every node's data folder (a file name)
    classifier-text-column        its text column
    classifier-label-column       its label column (records of other labels are skipped)
    classifier-clip               per-record gradient clip norm C (> 0)
    classifier-learning-rate      the coordinator's step on the mean gradient (> 0)

With ``target-delta``, ``dp-noise-shares``, ``encoder-backend`` and ``run-tag`` of the run
config. Every round a node gets the public head, :class:`ClassifierSettings` (its
record) and a :class:`~federation.round_settings.RoundSettings` record carrying the
run's privacy settings as a training round does (``target-epsilon`` is the classifier
epsilon, ``num-server-rounds`` the classifier rounds), so the node's operator bounds and
its CKKS contribution signing apply unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from embedding_core.errors import FedembedError
from federation.kmeans_settings import Task
from federation.round_settings import RecordValue, RoundSettings
from federation.statistics_settings import (
    FILE_NAME,
    bad_key,
    check_records_file,
    check_secure_sum,
    read_settings_record,
    statistics_round_settings,
)
from federation.wire import as_float

__all__ = [
    "CLASSIFIER_MESSAGE_TYPE",
    "ClassifierConfig",
    "ClassifierContentKey",
    "ClassifierSettings",
    "check_classifier_config",
    "classifier_round_settings",
    "parse_labels",
]

CLASSIFIER_MESSAGE_TYPE = "train.classifier"
"""Flower message type of a classifier round (the ClientApp's ``train`` action ``classifier``)."""

MAX_LABELS = 1000


class ClassifierContentKey(StrEnum):
    """Record names of a classifier round's messages (beside ``ContentKey``)."""

    SETTINGS = "classifier-settings"
    STATE = "classifier-state"
    """ArrayRecord: ``weights`` (k, d) and ``bias`` (k,), both public."""


class ClassifierConfig(Protocol):
    """The run-config fields a classifier run reads (``FederationConfig`` has them)."""

    @property
    def task(self) -> str: ...  # noqa: D102
    @property
    def classifier_labels(self) -> str: ...  # noqa: D102
    @property
    def classifier_rounds(self) -> int: ...  # noqa: D102
    @property
    def classifier_epsilon(self) -> float: ...  # noqa: D102
    @property
    def classifier_records(self) -> str: ...  # noqa: D102
    @property
    def classifier_text_column(self) -> str: ...  # noqa: D102
    @property
    def classifier_label_column(self) -> str: ...  # noqa: D102
    @property
    def classifier_clip(self) -> float: ...  # noqa: D102
    @property
    def classifier_learning_rate(self) -> float: ...  # noqa: D102
    @property
    def aggregation(self) -> str: ...  # noqa: D102
    @property
    def dp_noise_shares(self) -> int: ...  # noqa: D102
    @property
    def min_nodes(self) -> int: ...  # noqa: D102
    @property
    def target_delta(self) -> float: ...  # noqa: D102


def parse_labels(text: str) -> tuple[str, ...]:
    """The public label set of ``classifier-labels``: names, in order, without blanks.

    Raises:
        ValueError: Fewer than two names, a repeated name, or more than 1,000.
    """
    labels = tuple(part.strip() for part in text.split(",") if part.strip())
    if len(labels) < 2 or len(set(labels)) != len(labels) or len(labels) > MAX_LABELS:
        raise ValueError(text)
    return labels


def check_classifier_config(config: ClassifierConfig) -> None:
    """Check the classifier keys (nothing when the run has another task).

    Raises:
        FedembedError: A key is out of range, names a path, or the run's aggregation
            cannot keep one node's gradient hidden.
    """
    if config.task != Task.CLASSIFIER:
        return
    try:
        parse_labels(config.classifier_labels)
    except ValueError:
        raise bad_key(
            "classifier-labels",
            config.classifier_labels,
            f"2 to {MAX_LABELS} distinct comma-separated class names (public: the "
            "consortium declares them)",
        ) from None
    if config.classifier_rounds < 1:
        raise bad_key("classifier-rounds", config.classifier_rounds, "an integer >= 1")
    if not config.classifier_epsilon > 0:
        raise bad_key("classifier-epsilon", config.classifier_epsilon, "an epsilon > 0")
    if not config.classifier_clip > 0:
        raise bad_key("classifier-clip", config.classifier_clip, "a gradient clip norm > 0")
    if not config.classifier_learning_rate > 0:
        raise bad_key("classifier-learning-rate", config.classifier_learning_rate, "a number > 0")
    check_records_file(config, "classifier-records", config.classifier_records)
    for key, column in (
        ("classifier-text-column", config.classifier_text_column),
        ("classifier-label-column", config.classifier_label_column),
    ):
        if not column:
            raise bad_key(key, column, "a column of the records file")
    check_secure_sum(
        config,
        carries="classifier gradients",
        expected="aggregation='ckks' with task='classifier': each node's noisy gradient "
        "sum enters the secure sum encrypted",
    )


@dataclass(frozen=True)
class ClassifierSettings:
    """What a node needs to run its classifier step, besides the round's privacy settings.

    Attributes:
        labels: The public label set (row ``j`` of the head scores ``labels[j]``).
        records: The records file in the node's data folder.
        text_column, label_column: Its columns.
        clip: The per-record gradient clip norm ``C``.
        count_weight: The public weight of the count (:mod:`dp_training.dp_classifier_head`).
    """

    labels: tuple[str, ...]
    records: str
    text_column: str
    label_column: str
    clip: float
    count_weight: float

    def __post_init__(self) -> None:
        try:
            valid = parse_labels(",".join(self.labels)) == self.labels
        except ValueError:
            valid = False
        if (
            not valid
            or not FILE_NAME.fullmatch(self.records)
            or not self.text_column
            or not self.label_column
            or not self.clip > 0
            or not self.count_weight > 0
        ):
            raise FedembedError(
                f"the coordinator's classifier settings are invalid: labels={self.labels!r}, "
                f"records={self.records!r}, text-column={self.text_column!r}, "
                f"label-column={self.label_column!r}, clip={self.clip}, "
                f"count-weight={self.count_weight}",
                expected="2 or more distinct labels, a records file name (no path), both "
                "columns, clip > 0 and count-weight > 0",
                fix="run the coordinator's ServerApp (it checks them from the run config)",
            )

    def to_record(self) -> dict[str, RecordValue]:
        """The ConfigRecord content of :attr:`ClassifierContentKey.SETTINGS`."""
        return {
            "labels": ",".join(self.labels),
            "records": self.records,
            "text-column": self.text_column,
            "label-column": self.label_column,
            "clip": self.clip,
            "count-weight": self.count_weight,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> ClassifierSettings:
        """Read :meth:`to_record`'s record back; anything else is refused."""
        return read_settings_record(
            record,
            keys={"labels", "records", "text-column", "label-column", "clip", "count-weight"},
            what="classifier",
            types="labels, records, text-column, label-column (text), clip, count-weight (numbers)",
            build=lambda: cls(
                labels=parse_labels(str(record["labels"])),
                records=str(record["records"]),
                text_column=str(record["text-column"]),
                label_column=str(record["label-column"]),
                clip=as_float(record["clip"]),
                count_weight=as_float(record["count-weight"]),
            ),
        )


def classifier_round_settings(config: ClassifierConfig, base: RoundSettings) -> RoundSettings:
    """The privacy settings every classifier round carries, from the run's ``base``.

    ``target-epsilon`` is the classifier epsilon and ``num-server-rounds`` the classifier
    rounds, so the node's operator bounds and ledger bound the run as they bound training.
    """
    return statistics_round_settings(
        base, rounds=config.classifier_rounds, epsilon=config.classifier_epsilon
    )
