"""Threat: a curious fellow member under distributed DP (issue 25, item 8).

With ``t`` noise shares each node adds ``sigma / sqrt(t)``; a fellow member knows its own
share (and the decrypting node, a member, sees the raw sum), so another node's record is
hidden by ``t - 1`` shares only. The old calibration put the target on the whole sum:
at a nominal epsilon 8 and ``t = 3`` a fellow member had 10.24, and the release planned
for an MIA AUC of 0.55 gave it 0.56. The node now calibrates to the fellow member's view.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from client_node.local_round import LEDGER_FILE, run_local_round
from embedding_core.adapter import Adapter, AdapterSide
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings
from federation.wire import MetricKey
from policies import load_default_policy, plan_privacy
from privacy import (
    Observer,
    noise_multiplier_for,
    observed_noise_multiplier,
    strictest_observer,
    total_noise_for_observer,
)
from privacy.analysis import auc_bound, epsilon_for_mu, steps_mu

DELTA = 1e-5
SHARES = 3
DIM = 384


def _member_epsilon(*, sum_noise: float, rounds: int) -> float:
    """The epsilon a fellow member faces over ``rounds`` full-batch rounds."""
    member = observed_noise_multiplier(
        observer=Observer.FELLOW_MEMBER, noise_multiplier=sum_noise, shares=SHARES
    )
    return epsilon_for_mu(mu=steps_mu(noise_multiplier=member, steps=rounds), delta=DELTA)


def test_the_old_calibration_gave_a_fellow_member_10_24_at_a_nominal_8() -> None:
    # Prepare: the old recipe: the sum of three shares calibrated to epsilon 8.
    old_sum = noise_multiplier_for(
        target_epsilon=8.0, target_delta=DELTA, sample_rate=1.0, steps=100
    )

    # Execute
    member = _member_epsilon(sum_noise=old_sum, rounds=100)
    coordinator = epsilon_for_mu(mu=steps_mu(noise_multiplier=old_sum, steps=100), delta=DELTA)

    # Assert: the review's numbers.
    assert coordinator == pytest.approx(8.0, abs=0.01)
    assert member == pytest.approx(10.24, abs=0.02)


def test_the_old_plan_gave_a_fellow_member_an_auc_bound_above_the_policy() -> None:
    # Prepare: the default policy's plan (MIA AUC 0.55), computed for the sum's view.
    planned = plan_privacy(load_default_policy().policy, noise_shares=SHARES)
    old_sum_mu = planned.mu  # the old recipe put this mu on the secure sum

    # Execute: the fellow member's view of that sum.
    member_mu = old_sum_mu / math.sqrt((SHARES - 1) / SHARES)

    # Assert: 0.56 > 0.55, the review's finding; the plan now holds for the member.
    assert auc_bound(mu=member_mu) == pytest.approx(0.561, abs=0.001)
    assert auc_bound(mu=member_mu) > 0.55
    assert planned.bound_for(Observer.FELLOW_MEMBER).auc_bound <= 0.55 + 1e-9


def test_the_strictest_observer_is_the_fellow_member_and_the_fix_meets_its_target() -> None:
    # Prepare: the new calibration at a target of 8.
    member_noise = noise_multiplier_for(
        target_epsilon=8.0, target_delta=DELTA, sample_rate=1.0, steps=100
    )
    new_sum = total_noise_for_observer(
        observer=Observer.FELLOW_MEMBER, observed_noise_multiplier=member_noise, shares=SHARES
    )

    # Execute
    member = _member_epsilon(sum_noise=new_sum, rounds=100)
    coordinator = epsilon_for_mu(mu=steps_mu(noise_multiplier=new_sum, steps=100), delta=DELTA)

    # Assert
    assert strictest_observer(list(Observer)) == Observer.FELLOW_MEMBER
    assert 7.99 <= member <= 8.0
    assert coordinator < member
    assert new_sum / member_noise == pytest.approx(math.sqrt(SHARES / (SHARES - 1)))


def _node(folder: Path) -> Path:
    folder.mkdir()
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(3)]
    records = [{"query_id": f"q{i}", "query": f"question {i}", "doc_id": f"d{i}"} for i in range(2)]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_a_fellow_member_subtracting_its_share_faces_at_most_the_target(tmp_path: Path) -> None:
    # Prepare: a distributed-DP round on a node, by the real code: 2 rounds, epsilon 8.
    settings = RoundSettings(
        num_server_rounds=2, run_tag="r", target_epsilon=8.0, dp_noise_shares=SHARES
    )
    node = _node(tmp_path / "node")

    # Execute: the node's round; then the fellow member's view of three such shares,
    # sampled (seeded): the sum of every share minus its own.
    result = run_local_round(
        node_dir=node,
        node_name="node-x",
        global_state=Adapter(DIM, side=AdapterSide.QUERY, seed=0).state_dict(),
        settings=settings,
        server_round=1,
        node_privacy=NodePrivacy(max_epsilon=8.0),
    )
    share = result.metrics[MetricKey.NOISE_SHARE.value]
    generator = torch.Generator().manual_seed(0)
    shares = torch.randn(SHARES, 200_000, generator=generator, dtype=torch.float64) * share
    member_view = float((shares.sum(dim=0) - shares[0]).std())

    # Assert: the member's noise is sqrt(t - 1) shares (within 1%), and over the run's
    # two rounds it gives at most the target; the ledger charged that view and says so.
    assert member_view == pytest.approx(share * math.sqrt(SHARES - 1), rel=0.01)
    member_epsilon = epsilon_for_mu(
        mu=steps_mu(noise_multiplier=share * math.sqrt(SHARES - 1), steps=2), delta=DELTA
    )
    assert member_epsilon <= 8.0 + 1e-9
    epsilon_round = result.metrics[MetricKey.EPSILON.value]
    assert epsilon_round == pytest.approx(
        epsilon_for_mu(
            mu=steps_mu(noise_multiplier=share * math.sqrt(SHARES - 1), steps=1), delta=DELTA
        ),
        rel=1e-6,
    )
    ledger = json.loads((node / "state" / LEDGER_FILE).read_text())
    assert [entry["observer"] for entry in ledger["entries"]] == ["fellow-member"]


def test_the_utility_cost_is_sqrt_3_2_more_noise_per_node(tmp_path: Path) -> None:
    # Prepare: the same round as the node runs it, and the old per-node share.
    settings = RoundSettings(
        num_server_rounds=2, run_tag="r", target_epsilon=8.0, dp_noise_shares=SHARES
    )
    old_share = noise_multiplier_for(
        target_epsilon=8.0, target_delta=DELTA, sample_rate=1.0, steps=2
    ) / math.sqrt(SHARES)

    # Execute
    result = run_local_round(
        node_dir=_node(tmp_path / "node"),
        node_name="node-x",
        global_state=Adapter(DIM, side=AdapterSide.QUERY, seed=0).state_dict(),
        settings=settings,
        server_round=1,
        node_privacy=NodePrivacy(max_epsilon=8.0),
    )

    # Assert: each node adds sqrt(3/2) = 1.2247 times the noise it added before.
    ratio = result.metrics[MetricKey.NOISE_SHARE.value] / old_share
    assert ratio == pytest.approx(math.sqrt(3 / 2), rel=1e-9)
