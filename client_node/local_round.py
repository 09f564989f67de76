"""One federated round on a member node, independent of Flower's transport.

Takes the global adapter weights and the round settings, trains on the node's private
interactions (DP-SGD when enabled, charged to the node's persisted privacy ledger
before any result leaves the node), clips the update to the node-level clip norm and
returns new weights plus the privacy bookkeeping the node reports (epsilon, noise
multipliers, a unit weight, and the record count only where its operator declared it
public). Losses, norms and timings never leave the node. ``client_app.py`` wraps this
for Flower.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from client_node import round_timing
from client_node.node_data import load_node_data
from dp_training import (
    DPConfig,
    InteractionSet,
    TrainConfig,
    distributed_step_config,
    noise_share_multiplier,
    train_adapter,
)
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.encoder import Encoder
from embedding_core.errors import FedembedError
from federation.node_privacy import NodePrivacy
from federation.record_count_slot import split_clip, uses_count_slot
from federation.round_settings import RoundSettings
from federation.wire import MetricKey, WeightingMode
from privacy import Observer, PrivacyLedger, noise_multiplier_for, total_noise_for_observer

__all__ = ["LEDGER_FILE", "LocalResult", "clip_update", "run_local_round", "step_units"]

logger = logging.getLogger(__name__)

LEDGER_FILE = "privacy_ledger.json"


@dataclass(frozen=True)
class LocalResult:
    """New local weights and the metrics reported to the coordinator."""

    state: dict[str, torch.Tensor]
    metrics: dict[str, float]


@functools.lru_cache(maxsize=2)
def _encoder(model_path: str | None, backend: str) -> Encoder:
    return Encoder.load(model_path, backend=backend)


def clip_update(
    new: dict[str, torch.Tensor], old: dict[str, torch.Tensor], clip_norm: float
) -> tuple[dict[str, torch.Tensor], float]:
    """Clip ``new - old`` to L2 norm ``clip_norm`` (over all tensors); returns (new', norm)."""
    delta = {k: new[k].detach().float() - old[k].detach().float() for k in old}
    norm = math.sqrt(sum(float((d * d).sum()) for d in delta.values()))
    if clip_norm <= 0 or norm <= clip_norm:
        return {k: old[k].float() + delta[k] for k in old}, norm
    scale = clip_norm / norm
    return {k: old[k].float() + delta[k] * scale for k in old}, norm


def step_units(node_dir: str | Path) -> int:
    """The count a distributed-DP step divides its noisy gradient sum by (private).

    :func:`run_local_round` passes the same count to ``distributed_step_config``; the
    CKKS mod multiplies the update back by it, so the secure sum stays linear in every
    node's noisy sum (``federation.record_count_slot``). It never leaves the node.
    """
    return load_node_data(node_dir).num_units


def _adapter_for(settings: RoundSettings, state: dict[str, torch.Tensor]) -> Adapter:
    in_dim = int(next(iter(state.values())).shape[-1])
    rank = settings.adapter_rank or None
    adapter = Adapter(in_dim, kind=settings.adapter_kind, rank=rank, side=AdapterSide.QUERY)
    adapter.load_state_dict(state, strict=True)
    return adapter


def run_local_round(
    *,
    node_dir: str | Path,
    node_name: str,
    global_state: dict[str, torch.Tensor],
    settings: RoundSettings,
    server_round: int,
    node_privacy: NodePrivacy,
    model_path: str | None = None,
) -> LocalResult:
    """Train the adapter on this node's data for round ``server_round`` of ``settings``.

    ``node_privacy`` is the node operator's bound on what the coordinator may ask; the
    coordinator's ``settings`` never widen it.

    Raises:
        RoundRefusedError: The round asks for less privacy than the operator allows.
        BudgetExceededError: This round would take the node past its privacy budget.
        LedgerError: This round of this run was charged before (a replay).
        In every case nothing is trained and nothing is recorded.
    """
    if not 1 <= server_round <= settings.num_server_rounds:
        raise FedembedError(
            f"round {server_round} is outside the run's {settings.num_server_rounds} rounds",
            expected=f"a round in 1..{settings.num_server_rounds}",
            fix="run the coordinator's ServerApp (it numbers every round)",
        )
    node_privacy.check_round(settings, node_name=node_name)
    started = time.perf_counter()
    data = load_node_data(node_dir)
    # DP-SGD samples, clips and accounts privacy units: all records of one person or query.
    unit_count = data.num_units
    dp: DPConfig | None = None
    ledger: PrivacyLedger | None = None
    config = TrainConfig(
        epochs=settings.local_epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        temperature=settings.temperature,
        seed=server_round,
    )
    if settings.dp_noise_shares:
        config = distributed_step_config(config, unit_count)
    if settings.dp_enabled:
        # As Opacus's Poisson loader over units: ceil(G / B) steps per epoch at rate
        # 1 / ceil(G / B).
        batches = math.ceil(unit_count / config.batch_size)
        sample_rate = 1.0 / batches
        steps_per_round = config.epochs * batches
        # The target holds for the strictest observer, a fellow member: it knows its own
        # noise share, so another node's record is hidden by the other shares only
        # (privacy.observers). Calibrate that view, let the secure sum of t shares hold
        # the total ``noise`` it needs, and charge the ledger for the fellow member.
        charged_noise = noise_multiplier_for(
            target_epsilon=settings.target_epsilon,
            target_delta=settings.target_delta,
            sample_rate=sample_rate,
            steps=steps_per_round * settings.num_server_rounds,
        )
        noise = total_noise_for_observer(
            observer=Observer.FELLOW_MEMBER,
            observed_noise_multiplier=charged_noise,
            shares=settings.dp_noise_shares,
        )
        own_noise = noise_share_multiplier(noise, settings.dp_noise_shares)
        node_privacy.check_noise(own_noise, node_name=node_name)
        ledger = PrivacyLedger.open(
            data.state_dir / LEDGER_FILE,
            node_id=node_name,
            max_epsilon=node_privacy.max_epsilon,
            delta=settings.target_delta,
        )
        # Refuse before the model is even loaded: BudgetExceededError names the node and
        # the numbers.
        ledger.check_new_round(run_id=settings.run_tag, round=server_round)
        ledger.check(noise_multiplier=charged_noise, sample_rate=sample_rate, steps=steps_per_round)
        grad_clip, opacus_noise = settings.max_grad_norm, own_noise
        if uses_count_slot(settings):
            # The secure sum's count slot takes b of the clip norm C: clip gradients to
            # a = sqrt(C^2 - b^2), noise std own_noise * C as before (record_count_slot).
            grad_clip, _ = split_clip(settings.max_grad_norm)
            opacus_noise = own_noise * settings.max_grad_norm / grad_clip
        dp = DPConfig(
            noise_multiplier=opacus_noise,
            max_grad_norm=grad_clip,
            delta=settings.target_delta,
        )
    round_timing.mark("data_loaded")
    # The run's encoder backend (validated in its settings): the evaluation's space too.
    queries, positive, docs = data.vectors(_encoder(model_path, settings.encoder_backend))
    round_timing.mark("vectors_ready")
    records = InteractionSet(
        query_vectors=queries, positive_index=positive, doc_vectors=docs, unit_ids=data.unit_ids()
    )
    adapter = _adapter_for(settings, global_state)
    # Only privacy bookkeeping and public weights leave the node: no loss, norm, timing,
    # and the record count only where the operator declared it public (check_round
    # refuses a declared-counts round otherwise).
    metrics: dict[str, Any] = {MetricKey.UNIT_WEIGHT.value: 1.0}
    if settings.weighting == WeightingMode.DECLARED_COUNTS and node_privacy.public_record_count:
        metrics[MetricKey.NUM_EXAMPLES.value] = float(len(records))
    round_timing.mark("train_start")
    report = train_adapter(adapter, records, config, dp=dp)
    round_timing.mark("train_end")
    if ledger is not None and dp is not None:
        spent = ledger.charge(
            noise_multiplier=charged_noise,
            sample_rate=report.sample_rate,
            steps=report.steps,
            run_id=settings.run_tag,
            round=server_round,
            observer=Observer.FELLOW_MEMBER,
        )
        metrics[MetricKey.EPSILON.value] = spent
        metrics[MetricKey.NOISE_MULTIPLIER.value] = noise
        metrics[MetricKey.NOISE_SHARE.value] = own_noise
        # The charged mechanism, so that a release's proven bound can be computed from its
        # manifest (audit.membership_bound); it follows from public settings and the same
        # coarse unit count the epsilon already depends on.
        metrics[MetricKey.CHARGED_NOISE.value] = charged_noise
        metrics[MetricKey.SAMPLE_RATE.value] = report.sample_rate
        metrics[MetricKey.STEPS.value] = float(report.steps)
    new_state, norm = clip_update(adapter.state_dict(), global_state, settings.update_clip_norm)
    logger.info(
        "round: node=%s round=%d epsilon=%s encoder=%s",
        node_name,
        server_round,
        metrics.get(MetricKey.EPSILON.value),
        settings.encoder_backend,
    )
    logger.debug(  # on the node only: never sent
        "round: node=%s update_norm=%.4f seconds=%.1f",
        node_name,
        norm,
        time.perf_counter() - started,
    )
    return LocalResult(state=new_state, metrics={k: float(v) for k, v in metrics.items()})
