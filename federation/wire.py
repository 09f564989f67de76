"""Names on the wire between the coordinator's ServerApp and the nodes' ClientApp.

Message content keys, MetricRecord keys and node-config keys live here once, so the
two sides cannot drift apart; the round's ConfigRecord is written and read by
:class:`federation.round_settings.RoundSettings`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CLIPPING_NORM_KEY",
    "CONTRIBUTION_SET_KEY",
    "ERROR_CODE_NODE_REFUSED",
    "SERVER_ROUND_KEY",
    "AggregationMode",
    "ContentKey",
    "MetricKey",
    "NodeConfigKey",
    "WeightingMode",
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
    CKKS_DECRYPT = "ckks-decrypt"
    """A decrypt request: run tag, round and every signed contribution to sum."""
    CKKS_ENDORSE = "ckks-endorse"
    """An endorse request (the set of contributions to sum) and its signed reply."""


SERVER_ROUND_KEY = "server-round"
"""The round number Flower's strategies add to every round's ConfigRecord. The other
keys of that record are the fields of :class:`federation.round_settings.RoundSettings`."""

CONTRIBUTION_SET_KEY = "contribution-set"
"""The set of kit node ids a CKKS round's sum will hold, announced in its train message
(``federation.contributions.ContributionBinding.members``): each node signs its
contribution bound to that exact set, so the sum needs no endorsement exchange."""

ERROR_CODE_NODE_REFUSED = 4001
"""The error code of a node's reply when it refuses a round (its reason names why)."""

CLIPPING_NORM_KEY = "clipping_norm"
"""The update clip norm Flower's client-side-clipping DP strategy adds to the record
(``flwr.supercore.differential_privacy.KEY_CLIPPING_NORM``); a node clips with its own
``update-clip-norm`` and checks that the two agree."""


class MetricKey(StrEnum):
    """Keys of the MetricRecord a node replies with: privacy bookkeeping and weights only.

    Nothing computed from a node's records (losses, norms, timings) is a metric; the
    record count ``num-examples`` is sent only by a node whose operator declared it
    public, to a round weighted by declared counts (:class:`WeightingMode`).
    """

    NUM_EXAMPLES = "num-examples"
    EPSILON = "epsilon"
    EPSILON_ROUND = "epsilon-round"
    NOISE_MULTIPLIER = "noise-multiplier"
    NOISE_SHARE = "noise-share"
    CHARGED_NOISE = "charged-noise-multiplier"
    """The noise multiplier the node's ledger charged: the fellow member's view."""
    SAMPLE_RATE = "sample-rate"
    """The charge's sampling rate over privacy units (1 for full batch)."""
    STEPS = "steps"
    """The charge's DP-SGD steps this round."""
    UNIT_WEIGHT = "unit-weight"


class WeightingMode(StrEnum):
    """How the aggregate weighs the nodes (a public run setting)."""

    UNIFORM = "uniform"
    DECLARED_COUNTS = "declared-counts"


class NodeConfigKey(StrEnum):
    """Keys of a SuperNode's ``--node-config`` (set by the on-premise operator)."""

    DATA_DIR = "data-dir"
    NODE_NAME = "node-name"
    MAX_EPSILON = "max-epsilon"
    REQUIRE_DP = "require-dp"
    MAX_NOISE_SHARES = "max-noise-shares"
    MIN_NOISE_MULTIPLIER = "min-noise-multiplier"
    PUBLIC_RECORD_COUNT = "public-record-count"
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
