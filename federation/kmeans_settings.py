"""The settings of a federated k-means run: run-config keys, their checks, their record.

A run with ``task = "kmeans"`` builds a consortium-wide topic map by DP federated k-means
(:mod:`dp_training.dp_kmeans`) instead of training the adapter. Its run-config keys
(``[tool.flwr.app.config]`` / ``--run-config``)::

    task                  "train" (the adapter, default) or "kmeans"
    kmeans-k              clusters (>= 2)
    kmeans-rounds         noisy Lloyd rounds (>= 1; every one costs privacy)
    kmeans-epsilon        record-level epsilon of the whole run, for a fellow member
    kmeans-records        the records file in every node's data folder (a file name)
    kmeans-text-column    its text column
    kmeans-public-corpus  public texts the coordinator seeds the centroids with

With ``target-delta``, ``dp-noise-shares`` (``t``: each node adds ``1/sqrt(t)`` of the
noise; 0: each adds all of it), ``encoder-backend`` and ``run-tag`` of the run config.
Every round, a node gets the public centroids and :class:`KMeansSettings` (its record),
plus a :class:`~federation.round_settings.RoundSettings` record that carries the
run's privacy settings exactly as a training round does (``target-epsilon`` is the
k-means epsilon, ``num-server-rounds`` the k-means rounds), so the node's operator bounds
(:class:`~federation.node_privacy.NodePrivacy`) and its CKKS contribution signing apply
unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from embedding_core.errors import FedembedError
from federation.round_settings import RecordValue, RoundSettings
from federation.statistics_settings import (
    FILE_NAME,
    bad_key,
    check_records_file,
    check_secure_sum,
    read_settings_record,
    statistics_round_settings,
)
from federation.wire import as_float, as_int

__all__ = [
    "KMEANS_MESSAGE_TYPE",
    "KMeansConfig",
    "KMeansContentKey",
    "KMeansSettings",
    "Task",
    "check_kmeans_config",
    "kmeans_round_settings",
]

KMEANS_MESSAGE_TYPE = "train.kmeans"
"""Flower message type of a k-means round (the ClientApp's ``train`` action ``kmeans``)."""


class Task(StrEnum):
    """What a run does."""

    TRAIN = "train"
    KMEANS = "kmeans"
    CLASSIFIER = "classifier"
    """A DP classifier head (:mod:`federation.classifier_settings`)."""


class KMeansContentKey(StrEnum):
    """Record names of a k-means round's messages (beside ``ContentKey``)."""

    SETTINGS = "kmeans-settings"
    STATE = "kmeans-state"
    """ArrayRecord: ``centroids`` (k, d) and ``corrections`` (k,), both public."""


class KMeansConfig(Protocol):
    """The run-config fields a k-means run reads (``FederationConfig`` has them)."""

    @property
    def task(self) -> str: ...  # noqa: D102
    @property
    def kmeans_k(self) -> int: ...  # noqa: D102
    @property
    def kmeans_rounds(self) -> int: ...  # noqa: D102
    @property
    def kmeans_epsilon(self) -> float: ...  # noqa: D102
    @property
    def kmeans_records(self) -> str: ...  # noqa: D102
    @property
    def kmeans_text_column(self) -> str: ...  # noqa: D102
    @property
    def kmeans_public_corpus(self) -> str: ...  # noqa: D102
    @property
    def aggregation(self) -> str: ...  # noqa: D102
    @property
    def dp_noise_shares(self) -> int: ...  # noqa: D102
    @property
    def min_nodes(self) -> int: ...  # noqa: D102
    @property
    def target_delta(self) -> float: ...  # noqa: D102


def check_kmeans_config(config: KMeansConfig) -> None:
    """Check the k-means keys (only ``task`` when the run trains the adapter).

    Raises:
        FedembedError: A key is out of range, names a path, or the run's aggregation
            cannot keep one node's statistics hidden.
    """
    if config.task not in {t.value for t in Task}:
        raise bad_key(
            "task",
            config.task,
            "'train' (the adapter), 'kmeans' (a topic map) or 'classifier' (a classifier head)",
        )
    if config.task != Task.KMEANS:
        return
    if config.kmeans_k < 2:
        raise bad_key("kmeans-k", config.kmeans_k, "an integer >= 2")
    if config.kmeans_rounds < 1:
        raise bad_key("kmeans-rounds", config.kmeans_rounds, "an integer >= 1")
    if not config.kmeans_epsilon > 0:
        raise bad_key("kmeans-epsilon", config.kmeans_epsilon, "an epsilon > 0")
    check_records_file(config, "kmeans-records", config.kmeans_records)
    if not config.kmeans_text_column:
        raise bad_key("kmeans-text-column", config.kmeans_text_column, "the records' text column")
    if not config.kmeans_public_corpus:
        raise bad_key(
            "kmeans-public-corpus",
            config.kmeans_public_corpus,
            "a file of public texts (CSV or JSON lines with a text column) that seeds the "
            "centroids; no member's record may seed them",
        )
    check_secure_sum(
        config,
        carries="k-means statistics",
        expected="aggregation='ckks' with task='kmeans': each node's per-centroid sums "
        "and counts enter the secure sum encrypted",
    )


@dataclass(frozen=True)
class KMeansSettings:
    """What a node needs to run its k-means step, besides the round's privacy settings.

    Attributes:
        k: Clusters (the centroids' rows).
        records: The records file in the node's data folder.
        text_column: Its text column.
        count_weight: The public weight of the counts (:mod:`dp_training.dp_kmeans`).
    """

    k: int
    records: str
    text_column: str
    count_weight: float

    def __post_init__(self) -> None:
        if self.k < 2 or not FILE_NAME.fullmatch(self.records) or not self.text_column:
            raise FedembedError(
                f"the coordinator's k-means settings are invalid: k={self.k}, "
                f"records={self.records!r}, text-column={self.text_column!r}",
                expected="k >= 2, a records file name (no path) and a text column",
                fix="run the coordinator's ServerApp (it checks them from the run config)",
            )
        if not self.count_weight > 0:
            raise FedembedError(
                f"the coordinator's k-means count-weight={self.count_weight} is invalid",
                expected="a weight > 0",
                fix="run the coordinator's ServerApp",
            )

    def to_record(self) -> dict[str, RecordValue]:
        """The ConfigRecord content of :attr:`KMeansContentKey.SETTINGS`."""
        return {
            "k": self.k,
            "records": self.records,
            "text-column": self.text_column,
            "count-weight": self.count_weight,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> KMeansSettings:
        """Read :meth:`to_record`'s record back; anything else is refused."""
        return read_settings_record(
            record,
            keys={"k", "records", "text-column", "count-weight"},
            what="k-means",
            types="k (int), records, text-column (text), count-weight (number)",
            build=lambda: cls(
                k=as_int(record["k"]),
                records=str(record["records"]),
                text_column=str(record["text-column"]),
                count_weight=as_float(record["count-weight"]),
            ),
        )


def kmeans_round_settings(config: KMeansConfig, base: RoundSettings) -> RoundSettings:
    """The privacy settings every k-means round carries, from the run's ``base`` settings.

    ``target-epsilon`` is the k-means epsilon and ``num-server-rounds`` the k-means rounds,
    so :meth:`~federation.node_privacy.NodePrivacy.check_round` and the node's ledger
    bound a k-means run exactly as they bound training.
    """
    return statistics_round_settings(
        base, rounds=config.kmeans_rounds, epsilon=config.kmeans_epsilon
    )
