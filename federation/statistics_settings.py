"""What the settings of the DP statistics tasks (k-means, the classifier head) share.

Both tasks (:mod:`federation.kmeans_settings`, :mod:`federation.classifier_settings`)
read a records file in every node's data folder, release each node's noisy statistic
only inside the CKKS secure sum of at least ``dp-noise-shares`` nodes, send the node a
settings record it reads back strictly, and carry the run's privacy settings in a
:class:`~federation.round_settings.RoundSettings` whose ``target-epsilon`` and
``num-server-rounds`` are the task's, so the node's operator bounds
(:class:`~federation.node_privacy.NodePrivacy`) and ledger bound the task exactly as
they bound training. The run-config checks here speak in the run config's keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from embedding_core.errors import FedembedError
from federation.round_settings import RoundSettings
from federation.wire import AggregationMode

__all__ = [
    "FILE_NAME",
    "RUN_CONFIG_FIX",
    "StatisticsRunConfig",
    "bad_key",
    "check_records_file",
    "check_secure_sum",
    "read_settings_record",
    "statistics_round_settings",
]

FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A records file name in a node's data folder: no path, no leading dot."""
RUN_CONFIG_FIX = "set it in [tool.flwr.app.config] or with --run-config"

SettingsT = TypeVar("SettingsT")


class StatisticsRunConfig(Protocol):
    """The run-config fields every statistics task reads (``FederationConfig`` has them)."""

    @property
    def aggregation(self) -> str: ...  # noqa: D102
    @property
    def dp_noise_shares(self) -> int: ...  # noqa: D102
    @property
    def min_nodes(self) -> int: ...  # noqa: D102
    @property
    def target_delta(self) -> float: ...  # noqa: D102


def bad_key(key: str, value: object, expected: str) -> FedembedError:
    """The error for run-config ``key=value``: what was expected, how to set it."""
    return FedembedError(
        f"run config {key}={value!r} is invalid",
        expected=expected,
        fix=f"set {key} to {expected}; {RUN_CONFIG_FIX}",
    )


def check_records_file(config: StatisticsRunConfig, key: str, records: str) -> None:
    """``target-delta`` in (0, 1) and ``key`` a file name (no path).

    Raises:
        FedembedError: Either is invalid.
    """
    if not 0 < config.target_delta < 1:
        raise bad_key("target-delta", config.target_delta, "a delta in (0, 1)")
    if not FILE_NAME.fullmatch(records):
        raise bad_key(
            key,
            records,
            "a file name in every node's data folder (letters, digits, ._-; no path)",
        )


def check_secure_sum(config: StatisticsRunConfig, *, carries: str, expected: str) -> None:
    """CKKS aggregation, and at least ``dp-noise-shares`` nodes (``min-nodes``).

    ``carries`` names what the nodes release (in "cannot carry {carries}"), ``expected``
    says why CKKS.

    Raises:
        FedembedError: Not CKKS, or ``min-nodes`` below ``dp-noise-shares``.
    """
    if config.aggregation != AggregationMode.CKKS:
        raise FedembedError(
            f"run config aggregation={config.aggregation!r} cannot carry {carries}",
            expected=expected,
            fix=f"set aggregation='ckks' and a coordinator-kit; {RUN_CONFIG_FIX}",
        )
    if config.dp_noise_shares and config.min_nodes < config.dp_noise_shares:
        raise bad_key(
            "min-nodes", config.min_nodes, f">= dp-noise-shares ({config.dp_noise_shares})"
        )


def read_settings_record(
    record: Mapping[str, object],
    *,
    keys: set[str],
    what: str,
    types: str,
    build: Callable[[], SettingsT],
) -> SettingsT:
    """``build()`` a task's settings from the coordinator's record of exactly ``keys``.

    ``what`` names the settings (``k-means``), ``types`` the keys' types in the error.

    Raises:
        FedembedError: Other keys, or a value ``build`` cannot read.
    """
    if set(record) != keys:
        raise FedembedError(
            f"the coordinator's {what} settings have keys {sorted(record)}",
            expected=f"exactly {sorted(keys)}",
            fix="run the coordinator's ServerApp",
        )
    try:
        return build()
    except (TypeError, ValueError) as exc:
        raise FedembedError(
            f"the coordinator's {what} settings are malformed ({exc})",
            expected=types,
            fix="run the coordinator's ServerApp",
        ) from None


def statistics_round_settings(base: RoundSettings, *, rounds: int, epsilon: float) -> RoundSettings:
    """The privacy settings every round of a statistics task carries.

    ``base`` is the run's settings; ``target-epsilon`` becomes the task's ``epsilon`` and
    ``num-server-rounds`` its ``rounds``, with DP on.
    """
    return RoundSettings(
        num_server_rounds=rounds,
        run_tag=base.run_tag,
        aggregation=base.aggregation,
        dp_enabled=True,
        target_epsilon=epsilon,
        target_delta=base.target_delta,
        dp_noise_shares=base.dp_noise_shares,
        encoder_backend=base.encoder_backend,
    )
