"""What a member node's operator allows the coordinator to ask: the node's own bounds.

A node never takes the coordinator's word for its privacy. Its operator sets, in the
SuperNode's ``--node-config``, the node's whole privacy budget (``max-epsilon``,
mandatory), whether rounds without DP are allowed at all (``require-dp``, true unless
the operator declares otherwise), the largest number of noise shares it accepts
(``max-noise-shares``: with ``t`` shares each node adds only ``1/sqrt(t)`` of the noise
and trusts ``t - 1`` others to add theirs) and the smallest noise multiplier its own step
may carry (``min-noise-multiplier``). Its record count is private unless the operator
declares it public (``public-record-count``, false by default): only then does the node
take part in rounds weighted by declared counts (``weighting = "declared-counts"``), the
one case where the count leaves the node. :meth:`NodePrivacy.check_round` refuses a
round that asks for less, before anything is trained or charged.

:class:`NodePrivacy` writes and reads its own node-config record, so the CLI, the
simulation engine and the deployment helpers all start nodes with the same keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from embedding_core.errors import FedembedError
from federation.round_settings import RecordValue, RoundSettings
from federation.wire import NodeConfigKey, WeightingMode

__all__ = ["DEFAULT_MAX_NOISE_SHARES", "NodePrivacy", "RoundRefusedError"]

DEFAULT_MAX_NOISE_SHARES = 3
"""The most noise shares a node accepts unless its operator says otherwise."""

_FIX = 'restart the SuperNode with --node-config "{key}=..." (the operator\'s setting)'


class RoundRefusedError(FedembedError):
    """The coordinator asked this node for a round its operator's settings do not allow."""


def _number(node_config: Mapping[str, object], key: NodeConfigKey) -> float | None:
    value = node_config.get(key.value)
    if value is None:
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(value)
        return float(value)
    except ValueError:
        raise FedembedError(
            f"node config {key.value}={value!r} is not a number",
            expected="a number",
            fix=_FIX.format(key=key.value),
        ) from None


def _flag(node_config: Mapping[str, object], key: NodeConfigKey, default: bool) -> bool:
    value = node_config.get(key.value)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise FedembedError(
        f"node config {key.value}={value!r} is not true or false",
        expected="true or false",
        fix=_FIX.format(key=key.value),
    )


@dataclass(frozen=True, kw_only=True)
class NodePrivacy:
    """The operator's bounds on what the coordinator may ask of this node.

    Attributes:
        max_epsilon: The node's whole privacy budget (every run and round composed).
        require_dp: Refuse rounds without DP-SGD on the node's records.
        max_noise_shares: The largest ``dp-noise-shares`` the node accepts.
        min_noise_multiplier: The smallest noise multiplier of the node's own DP step.
        public_record_count: The operator declares the node's record count public, so
            the node may send it to rounds weighted by declared counts.
    """

    max_epsilon: float
    require_dp: bool = True
    max_noise_shares: int = DEFAULT_MAX_NOISE_SHARES
    min_noise_multiplier: float = 0.0
    public_record_count: bool = False

    def __post_init__(self) -> None:
        def bad(key: NodeConfigKey, value: object, expected: str) -> FedembedError:
            return FedembedError(
                f"node config {key.value}={value!r} is invalid",
                expected=expected,
                fix=_FIX.format(key=key.value),
            )

        if not (math.isfinite(self.max_epsilon) and self.max_epsilon > 0):
            raise bad(NodeConfigKey.MAX_EPSILON, self.max_epsilon, "a finite epsilon > 0")
        if isinstance(self.max_noise_shares, bool) or self.max_noise_shares < 1:
            raise bad(NodeConfigKey.MAX_NOISE_SHARES, self.max_noise_shares, "an integer >= 1")
        if not (math.isfinite(self.min_noise_multiplier) and self.min_noise_multiplier >= 0):
            raise bad(NodeConfigKey.MIN_NOISE_MULTIPLIER, self.min_noise_multiplier, ">= 0")

    def to_node_config(self) -> dict[str, RecordValue]:
        """The ``--node-config`` entries that :meth:`from_node_config` reads back."""
        return {
            NodeConfigKey.MAX_EPSILON.value: self.max_epsilon,
            NodeConfigKey.REQUIRE_DP.value: self.require_dp,
            NodeConfigKey.MAX_NOISE_SHARES.value: self.max_noise_shares,
            NodeConfigKey.MIN_NOISE_MULTIPLIER.value: self.min_noise_multiplier,
            NodeConfigKey.PUBLIC_RECORD_COUNT.value: self.public_record_count,
        }

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, object]) -> NodePrivacy:
        """Read the operator's bounds; a node without ``max-epsilon`` does not train."""
        max_epsilon = _number(node_config, NodeConfigKey.MAX_EPSILON)
        if max_epsilon is None:
            raise FedembedError(
                "this node has no privacy budget",
                expected=f'--node-config "{NodeConfigKey.MAX_EPSILON.value}=8.0" '
                "(the operator's whole budget; the coordinator's target never replaces it)",
                fix=_FIX.format(key=NodeConfigKey.MAX_EPSILON.value),
            )
        shares = _number(node_config, NodeConfigKey.MAX_NOISE_SHARES)
        if shares is not None and not shares.is_integer():
            raise FedembedError(
                f"node config {NodeConfigKey.MAX_NOISE_SHARES.value}={shares} is not an integer",
                expected="an integer >= 1",
                fix=_FIX.format(key=NodeConfigKey.MAX_NOISE_SHARES.value),
            )
        min_noise = _number(node_config, NodeConfigKey.MIN_NOISE_MULTIPLIER)
        return cls(
            max_epsilon=max_epsilon,
            require_dp=_flag(node_config, NodeConfigKey.REQUIRE_DP, True),
            max_noise_shares=DEFAULT_MAX_NOISE_SHARES if shares is None else int(shares),
            min_noise_multiplier=0.0 if min_noise is None else min_noise,
            public_record_count=_flag(node_config, NodeConfigKey.PUBLIC_RECORD_COUNT, False),
        )

    def check_round(self, settings: RoundSettings, *, node_name: str) -> None:
        """Refuse a round that asks for less privacy than this node's operator allows."""
        if self.require_dp and not settings.dp_enabled:
            raise RoundRefusedError(
                f"node {node_name} refuses a round without DP: the coordinator sent "
                "dp-enabled=false and this node requires DP",
                expected="dp-enabled=true",
                fix="the coordinator enables DP; or the node's operator sets "
                f"{NodeConfigKey.REQUIRE_DP.value}=false to allow non-DP rounds",
            )
        if settings.dp_noise_shares > self.max_noise_shares:
            raise RoundRefusedError(
                f"node {node_name} refuses dp-noise-shares={settings.dp_noise_shares}: it "
                f"would add only 1/sqrt({settings.dp_noise_shares}) of the noise",
                expected=f"dp-noise-shares <= {self.max_noise_shares} (this node's "
                f"{NodeConfigKey.MAX_NOISE_SHARES.value})",
                fix="the coordinator asks for fewer shares; or the node's operator raises "
                f"{NodeConfigKey.MAX_NOISE_SHARES.value}",
            )
        if settings.weighting == WeightingMode.DECLARED_COUNTS and not self.public_record_count:
            raise RoundRefusedError(
                f"node {node_name} refuses a round weighted by declared record counts: its "
                "operator has not declared its record count public",
                expected=f"weighting='{WeightingMode.UNIFORM.value}'",
                fix="the coordinator weighs nodes uniformly; or the node's operator sets "
                f"{NodeConfigKey.PUBLIC_RECORD_COUNT.value}=true",
            )
        if settings.dp_enabled and settings.target_epsilon > self.max_epsilon:
            raise RoundRefusedError(
                f"node {node_name} refuses a run with target-epsilon={settings.target_epsilon}:"
                f" more than its whole budget {self.max_epsilon}",
                expected=f"target-epsilon <= {self.max_epsilon}",
                fix="the coordinator lowers target-epsilon; or the node's operator raises "
                f"{NodeConfigKey.MAX_EPSILON.value}",
            )

    def check_noise(self, noise_multiplier: float, *, node_name: str) -> None:
        """Refuse a DP step whose own noise is below the operator's minimum."""
        if noise_multiplier < self.min_noise_multiplier:
            raise RoundRefusedError(
                f"node {node_name} refuses a DP step with noise multiplier "
                f"{noise_multiplier:.4g}, below its minimum {self.min_noise_multiplier:g}",
                expected=f"the round's settings to give this node's step a noise multiplier "
                f">= {self.min_noise_multiplier:g}",
                fix="the coordinator lowers target-epsilon or dp-noise-shares, or raises "
                "the rounds' noise; or the node's operator lowers "
                f"{NodeConfigKey.MIN_NOISE_MULTIPLIER.value}",
            )
