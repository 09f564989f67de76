"""The federation's run configuration, read once from ``[tool.flwr.app.config]``.

Every key is validated here with a message that names the key, the value and the fix;
the rest of the coordinator only sees a typed ``FederationConfig``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from embedding_core.errors import FedembedError
from federation.wire import AggregationMode, ConfigKey

__all__ = ["FederationConfig"]

logger = logging.getLogger(__name__)


def _coerce(default: object, value: object) -> object:
    if isinstance(default, int):
        return int(str(value))
    if isinstance(default, float):
        return float(str(value))
    return str(value)


@dataclass(frozen=True)
class FederationConfig:
    """Typed run configuration (names match the TOML keys with ``-`` for ``_``)."""

    num_server_rounds: int = 5
    aggregation: str = AggregationMode.CKKS.value
    allow_insecure_plaintext: bool = False
    coordinator_kit: str = ""
    adapter_kind: str = "residual_linear"
    adapter_rank: int = 0
    embedding_dim: int = 384
    local_epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 1e-3
    temperature: float = 0.05
    dp_enabled: bool = True
    target_epsilon: float = 8.0
    target_delta: float = 1e-5
    max_grad_norm: float = 1.0
    update_clip_norm: float = 0.0
    node_noise_multiplier: float = 0.0
    dp_noise_shares: int = 0
    server_learning_rate: float = 0.0
    min_nodes: int = 2
    fraction_train: float = 1.0
    eval_dataset: str = "scifact"
    data_dir: str = ""
    out_dir: str = "out/federation"
    run_tag: str = "run"
    round_timeout: float = 1800.0

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> FederationConfig:
        """Validate Flower's run config (unknown keys are an error, not ignored)."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in run_config.items():
            name = key.replace("-", "_")
            if name not in known:
                raise FedembedError(
                    f"unknown run config key {key!r}",
                    expected=f"one of {sorted(k.replace('_', '-') for k in known)}",
                    fix="remove or rename the key in [tool.flwr.app.config] / --run-config",
                )
            default = known[name].default
            try:
                if isinstance(default, bool):
                    values[name] = (
                        value if isinstance(value, bool) else str(value).lower() == "true"
                    )
                else:
                    values[name] = _coerce(default, value)
            except (TypeError, ValueError) as exc:
                raise FedembedError(
                    f"run config {key}={value!r} is not a {type(default).__name__}",
                    fix=f"set {key} to a {type(default).__name__}",
                ) from exc
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Check ranges and combinations."""

        def bad(key: str, value: object, expected: str) -> FedembedError:
            return FedembedError(
                f"run config {key}={value!r} is invalid",
                expected=expected,
                fix=f"set {key} in [tool.flwr.app.config] or with --run-config",
            )

        if self.aggregation not in {m.value for m in AggregationMode}:
            raise bad("aggregation", self.aggregation, "'ckks', 'plaintext' or 'secaggplus'")
        if self.aggregation == AggregationMode.PLAINTEXT and not self.allow_insecure_plaintext:
            raise FedembedError(
                "plaintext aggregation lets the coordinator see every node's update",
                expected="aggregation='ckks', or an explicit allow-insecure-plaintext=true",
                fix="use CKKS (provision kits), or set allow-insecure-plaintext=true for tests",
            )
        if self.aggregation == AggregationMode.CKKS and not self.coordinator_kit:
            raise bad("coordinator-kit", self.coordinator_kit, "the coordinator kit folder")
        if self.num_server_rounds < 1:
            raise bad("num-server-rounds", self.num_server_rounds, ">= 1")
        if self.min_nodes < 1:
            raise bad("min-nodes", self.min_nodes, ">= 1")
        if not 0 < self.fraction_train <= 1:
            raise bad("fraction-train", self.fraction_train, "in (0, 1]")
        if self.dp_enabled and not (self.target_epsilon > 0 and 0 < self.target_delta < 1):
            raise bad("target-epsilon", self.target_epsilon, "> 0 with 0 < target-delta < 1")
        if self.node_noise_multiplier < 0:
            raise bad("node-noise-multiplier", self.node_noise_multiplier, ">= 0")
        if self.aggregation == AggregationMode.SECAGGPLUS and self.node_noise_multiplier > 0:
            raise bad("node-noise-multiplier", self.node_noise_multiplier, "0 with secaggplus")
        if self.aggregation == AggregationMode.SECAGGPLUS and self.min_nodes < 2:
            raise bad("min-nodes", self.min_nodes, ">= 2 with secaggplus")
        if self.node_noise_multiplier > 0 and self.update_clip_norm <= 0:
            raise bad("update-clip-norm", self.update_clip_norm, "> 0 when node-level DP is on")
        self._validate_distributed_dp(bad)

    def _validate_distributed_dp(self, bad: Callable[[str, object, str], FedembedError]) -> None:
        shares, key = self.dp_noise_shares, "dp-noise-shares"
        if not self.server_learning_rate >= 0:
            raise bad("server-learning-rate", self.server_learning_rate, ">= 0 (0 = FedAvg)")
        if self.server_learning_rate > 0 and self.aggregation == AggregationMode.SECAGGPLUS:
            raise bad("server-learning-rate", self.server_learning_rate, "0 with secaggplus")
        if shares == 0:
            return
        if shares < 0 or not self.dp_enabled:
            raise bad(key, shares, "0, or >= 1 with dp-enabled=true")
        if shares > 1 and self.aggregation != AggregationMode.CKKS:
            raise FedembedError(
                f"run config {key}={shares} needs CKKS secure aggregation: each node adds "
                f"only 1/sqrt({shares}) of the noise, so its update alone must stay hidden",
                expected="aggregation='ckks' (or dp-noise-shares=0 or 1)",
                fix="set aggregation='ckks' and a coordinator-kit",
            )
        if self.min_nodes < shares:
            raise bad("min-nodes", self.min_nodes, f">= dp-noise-shares ({shares})")
        if self.node_noise_multiplier > 0:
            raise bad("node-noise-multiplier", self.node_noise_multiplier, "0 with dp-noise-shares")
        if shares > 1 and self.update_clip_norm > 0:
            # Scaling one node's noisy step by its own norm is not linear: the sum would no
            # longer be the consortium's clipped gradient plus the whole noise.
            raise bad("update-clip-norm", self.update_clip_norm, "0 with dp-noise-shares > 1")

    def train_config(self) -> dict[str, Any]:
        """The ConfigRecord content sent to nodes each round."""
        return {
            ConfigKey.TOTAL_ROUNDS.value: self.num_server_rounds,
            ConfigKey.RUN_TAG.value: self.run_tag,
            ConfigKey.ADAPTER_KIND.value: self.adapter_kind,
            ConfigKey.ADAPTER_RANK.value: self.adapter_rank,
            ConfigKey.LOCAL_EPOCHS.value: self.local_epochs,
            ConfigKey.BATCH_SIZE.value: self.batch_size,
            ConfigKey.LEARNING_RATE.value: self.learning_rate,
            ConfigKey.TEMPERATURE.value: self.temperature,
            ConfigKey.DP_ENABLED.value: self.dp_enabled,
            ConfigKey.TARGET_EPSILON.value: self.target_epsilon,
            ConfigKey.TARGET_DELTA.value: self.target_delta,
            ConfigKey.MAX_GRAD_NORM.value: self.max_grad_norm,
            ConfigKey.UPDATE_CLIP_NORM.value: self.update_clip_norm,
            ConfigKey.NOISE_SHARES.value: self.dp_noise_shares,
            ConfigKey.AGGREGATION.value: self.aggregation,
        }
