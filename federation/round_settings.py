"""What the coordinator asks of every node each round: one type, its own wire record.

:class:`RoundSettings` is the one definition of the per-round settings. Its field names
are the keys of the ConfigRecord sent with each round and of the run config
(``[tool.flwr.app.config]`` / ``--run-config``), with ``-`` for ``_``;
:meth:`RoundSettings.to_record` writes that record and :meth:`RoundSettings.from_record`
reads it back (a round-trip is the identity). The run configuration
(:class:`federation.run_config.FederationConfig`) extends it with what only the
coordinator needs, so the two cannot drift apart.

A node reads the record with :meth:`RoundSettings.from_record`, which refuses keys the
protocol does not define and values of the wrong type or out of range, with an error
that names the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, ClassVar, Self

from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, ENCODER_BACKENDS
from embedding_core.errors import FedembedError
from federation.wire import (
    CLIPPING_NORM_KEY,
    CONTRIBUTION_SET_KEY,
    SERVER_ROUND_KEY,
    AggregationMode,
    WeightingMode,
)

__all__ = ["RecordValue", "RoundSettings", "field_key", "server_round_of"]

RecordValue = bool | int | float | str
"""A scalar a Flower ConfigRecord (and a TOML run config) holds."""


def field_key(name: str) -> str:
    """The record and run-config key of a settings field (`dp_noise_shares`: `dp-noise-shares`)."""
    return name.replace("_", "-")


def _default_of(item: Field[Any]) -> object:
    if item.default is not MISSING:
        return item.default
    raise TypeError(f"settings field {item.name} needs a default")  # pragma: no cover


def _parse(default: object, value: object) -> RecordValue:
    """``value`` as the type of ``default`` (records keep types; run configs may hold text)."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        raise ValueError(value)
    if isinstance(default, int):
        if isinstance(value, str):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(value)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    if not isinstance(value, str):
        raise ValueError(value)
    return value


@dataclass(frozen=True, kw_only=True)
class RoundSettings:
    """The settings every node receives each round (validated on construction).

    Attributes:
        num_server_rounds: Rounds in the run (a node's DP budget spans all of them).
        run_tag: Names the run in every node's privacy ledger.
        aggregation: ``ckks``, ``secaggplus`` or ``plaintext``.
        adapter_kind: ``residual_linear``, ``low_rank`` or ``shift``.
        adapter_rank: Rank of a low-rank adapter (0 = full).
        local_epochs: Local passes over the records per round.
        batch_size: Records per step (expected Poisson batch with DP).
        learning_rate: Local optimiser step size.
        temperature: Softmax temperature on cosine scores.
        dp_enabled: DP-SGD on the node's records.
        target_epsilon: Record-level epsilon of the whole run (all rounds).
        target_delta: Its delta.
        max_grad_norm: Per-unit clipping norm (all records of one query or person).
        update_clip_norm: Node-level clip of the round's update (0 = none).
        dp_noise_shares: 0 = local DP-SGD; t >= 1 = distributed DP, each node adds
            ``1/sqrt(t)`` of the noise in one full-batch step.
        weighting: ``uniform`` (every node weighs 1) or ``declared-counts`` (nodes weigh
            their record counts, which only nodes whose operators declared them public
            send; any other node refuses the round).
        encoder_backend: How every node (and the coordinator's central evaluation)
            encodes texts: ``torch``, ``onnx`` or ``onnx-int8``. One backend per run:
            vectors of two backends are of two spaces (int8 ones are only cosine
            0.94-0.96 to fp32 ones).
    """

    source: ClassVar[str] = "round settings"
    fix_hint: ClassVar[str] = "set it in [tool.flwr.app.config] or with --run-config"

    num_server_rounds: int = 5
    run_tag: str = "run"
    aggregation: str = AggregationMode.CKKS.value
    adapter_kind: str = "residual_linear"
    adapter_rank: int = 0
    local_epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 1e-3
    temperature: float = 0.05
    dp_enabled: bool = True
    target_epsilon: float = 8.0
    target_delta: float = 1e-5
    max_grad_norm: float = 1.0
    update_clip_norm: float = 0.0
    dp_noise_shares: int = 0
    weighting: str = WeightingMode.UNIFORM.value
    encoder_backend: str = DEFAULT_ENCODER_BACKEND

    def __post_init__(self) -> None:
        self.validate()

    def _bad(self, name: str, expected: str) -> FedembedError:
        key = field_key(name)
        return FedembedError(
            f"{self.source} {key}={getattr(self, name)!r} is invalid",
            expected=expected,
            fix=f"set {key} to {expected}; {self.fix_hint}",
        )

    def validate(self) -> None:
        """Check the ranges and combinations a node can check on its own."""
        if self.aggregation not in {m.value for m in AggregationMode}:
            raise self._bad("aggregation", "'ckks', 'plaintext' or 'secaggplus'")
        if self.weighting not in {m.value for m in WeightingMode}:
            raise self._bad("weighting", "'uniform' or 'declared-counts'")
        if self.encoder_backend not in ENCODER_BACKENDS:
            raise self._bad("encoder_backend", " or ".join(repr(b) for b in ENCODER_BACKENDS))
        for name in ("num_server_rounds", "local_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise self._bad(name, ">= 1")
        if self.adapter_rank < 0:
            raise self._bad("adapter_rank", ">= 0 (0 = full rank)")
        for name in ("learning_rate", "temperature", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise self._bad(name, "> 0")
        if not self.update_clip_norm >= 0:
            raise self._bad("update_clip_norm", ">= 0 (0 = no node-level clipping)")
        if self.dp_enabled and not self.target_epsilon > 0:
            raise self._bad("target_epsilon", "> 0 when dp-enabled=true")
        if self.dp_enabled and not 0 < self.target_delta < 1:
            raise self._bad("target_delta", "in (0, 1) when dp-enabled=true")
        if self.dp_noise_shares < 0 or (self.dp_noise_shares and not self.dp_enabled):
            raise self._bad("dp_noise_shares", "0, or >= 1 with dp-enabled=true")
        if self.dp_noise_shares > 1 and self.update_clip_norm > 0:
            # Scaling one node's noisy step by its own norm is not linear: the sum would no
            # longer be the consortium's clipped gradient plus the whole noise.
            raise self._bad("update_clip_norm", "0 with dp-noise-shares > 1")

    @classmethod
    def _from_mapping(
        cls, values: Mapping[str, object], *, source: str, skip: frozenset[str] = frozenset()
    ) -> Self:
        known = {field_key(f.name): f for f in fields(cls) if f.init}
        parsed: dict[str, Any] = {}
        for key, value in values.items():
            if key in skip:
                continue
            item = known.get(key)
            if item is None:
                raise FedembedError(
                    f"{source} has an unknown key {key!r}",
                    expected=f"one of {sorted(known)}",
                    fix=f"remove or rename {key}; {cls.fix_hint}",
                )
            default = _default_of(item)
            try:
                parsed[item.name] = _parse(default, value)
            except (TypeError, ValueError) as exc:
                raise FedembedError(
                    f"{source} {key}={value!r} is not a {type(default).__name__}",
                    expected=f"a {type(default).__name__}",
                    fix=f"set {key} to a {type(default).__name__}; {cls.fix_hint}",
                ) from exc
        return cls(**parsed)

    def to_record(self) -> dict[str, RecordValue]:
        """The ConfigRecord content sent to the nodes (the round's own fields only)."""
        return {field_key(f.name): getattr(self, f.name) for f in fields(RoundSettings)}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> RoundSettings:
        """Read :meth:`to_record`'s record (Flower's round number: :func:`server_round_of`).

        Besides the settings' own keys, the record may hold the keys Flower's strategies
        add: the round number, and the clip norm of client-side-clipping DP, which must
        equal ``update-clip-norm`` (the norm the node clips to); and the CKKS round's
        announced contribution set (read by ``client_node.ckks_contribution``).
        """
        settings = RoundSettings._from_mapping(
            record,
            source="the coordinator's round settings",
            skip=frozenset({SERVER_ROUND_KEY, CLIPPING_NORM_KEY, CONTRIBUTION_SET_KEY}),
        )
        flower_norm = record.get(CLIPPING_NORM_KEY)
        if flower_norm is not None and (
            isinstance(flower_norm, bool)
            or not isinstance(flower_norm, int | float)
            or float(flower_norm) != settings.update_clip_norm
        ):
            raise FedembedError(
                f"the coordinator's round settings have {CLIPPING_NORM_KEY}={flower_norm!r} "
                f"but update-clip-norm={settings.update_clip_norm}",
                expected="one clip norm: Flower's client-side clipping uses update-clip-norm",
                fix="run the coordinator's ServerApp (it sets both from update-clip-norm)",
            )
        return settings

    def round_settings(self) -> RoundSettings:
        """These settings as sent to the nodes (drops what extends them)."""
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(RoundSettings)}
        return RoundSettings(**values)


def server_round_of(record: Mapping[str, object], settings: RoundSettings) -> int:
    """The round number Flower's strategy put in the record, checked against the run."""
    value = record.get(SERVER_ROUND_KEY)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FedembedError(
            f"the coordinator's round settings have no integer {SERVER_ROUND_KEY!r}",
            expected=f"{SERVER_ROUND_KEY} in 1..{settings.num_server_rounds}",
            fix="run the coordinator's ServerApp (it numbers every round)",
        )
    if not 1 <= value <= settings.num_server_rounds:
        raise FedembedError(
            f"{SERVER_ROUND_KEY}={value} is outside the run's rounds",
            expected=f"1..{settings.num_server_rounds}",
            fix="run the coordinator's ServerApp (it numbers every round)",
        )
    return value
