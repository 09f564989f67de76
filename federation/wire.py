"""Names on the wire between the coordinator's ServerApp and the nodes' ClientApp.

Message content keys, ConfigRecord keys and MetricRecord keys live here once, so the
two sides cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AggregationMode",
    "ConfigKey",
    "ContentKey",
    "MetricKey",
    "NodeConfigKey",
    "as_bytes_list",
    "as_float",
    "as_int",
]


class AggregationMode(StrEnum):
    """How node updates are combined."""

    CKKS = "ckks"
    PLAINTEXT = "plaintext"
    SECAGGPLUS = "secaggplus"


class ContentKey(StrEnum):
    """Record names inside a Message's RecordDict."""

    ARRAYS = "arrays"
    CONFIG = "config"
    METRICS = "metrics"
    CKKS_UPDATE = "ckks-update"
    CKKS_SUM = "ckks-sum"


class ConfigKey(StrEnum):
    """Keys of the ConfigRecord the coordinator sends with each round."""

    SERVER_ROUND = "server-round"
    TOTAL_ROUNDS = "total-rounds"
    RUN_TAG = "run-tag"
    ADAPTER_KIND = "adapter-kind"
    ADAPTER_RANK = "adapter-rank"
    LOCAL_EPOCHS = "local-epochs"
    BATCH_SIZE = "batch-size"
    LEARNING_RATE = "learning-rate"
    TEMPERATURE = "temperature"
    DP_ENABLED = "dp-enabled"
    TARGET_EPSILON = "target-epsilon"
    TARGET_DELTA = "target-delta"
    MAX_GRAD_NORM = "max-grad-norm"
    UPDATE_CLIP_NORM = "update-clip-norm"
    NOISE_SHARES = "noise-shares"
    AGGREGATION = "aggregation"
    CKKS_LENGTH = "ckks-length"


class MetricKey(StrEnum):
    """Keys of the MetricRecord a node replies with."""

    NUM_EXAMPLES = "num-examples"
    EPSILON = "epsilon"
    EPSILON_ROUND = "epsilon-round"
    NOISE_MULTIPLIER = "noise-multiplier"
    NOISE_SHARE = "noise-share"
    TRAIN_LOSS = "train-loss"
    UPDATE_NORM = "update-norm"
    SECONDS = "seconds"
    UNIT_WEIGHT = "unit-weight"


class NodeConfigKey(StrEnum):
    """Keys of a SuperNode's ``--node-config`` (set by the on-premise operator)."""

    DATA_DIR = "data-dir"
    NODE_NAME = "node-name"
    MAX_EPSILON = "max-epsilon"
    KIT_DIR = "kit-dir"


def as_int(value: object) -> int:
    """A record value as int (records hold int | float | str | bytes | bool | lists)."""
    if isinstance(value, bool | int | float | str):
        return int(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def as_float(value: object) -> float:
    """A record value as float."""
    if isinstance(value, bool | int | float | str):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def as_bytes_list(value: object) -> list[bytes]:
    """A record value as a list of bytes (ciphertext chunks)."""
    if isinstance(value, list) and all(isinstance(v, bytes) for v in value):
        return list(value)
    raise TypeError(f"expected a list of bytes, got {type(value).__name__}")
