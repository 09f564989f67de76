"""One node's round: the budget is checked before the model is loaded or anything trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from client_node.local_round import LEDGER_FILE, run_local_round
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.errors import FedembedError, ModelNotFoundError
from federation.node_privacy import NodePrivacy, RoundRefusedError
from federation.round_settings import RoundSettings
from federation.wire import MetricKey
from privacy import BudgetExceededError, PrivacyLedger, noise_multiplier_for
from privacy.analysis import epsilon_for_mu, steps_mu

DIM = 384


def _node(folder: Path) -> Path:
    """A member folder: three documents and two private interactions."""
    folder.mkdir()
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(3)]
    records = [{"query_id": f"q{i}", "query": f"question {i}", "doc_id": f"d{i}"} for i in range(2)]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _global_state() -> dict[str, torch.Tensor]:
    return Adapter(DIM, side=AdapterSide.QUERY, seed=0).state_dict()


def _round(node: Path, *, max_epsilon: float) -> None:
    """One DP round calibrated to epsilon 8, with a model path that does not exist."""
    run_local_round(
        node_dir=node,
        node_name="node-x",
        global_state=_global_state(),
        settings=RoundSettings(num_server_rounds=1, run_tag="r", target_epsilon=8.0),
        server_round=1,
        node_privacy=NodePrivacy(max_epsilon=max_epsilon),
        model_path=str(node.parent / "no-such-model"),
    )


def test_an_exhausted_budget_refuses_before_the_model_is_loaded(tmp_path: Path) -> None:
    # Prepare: a node allowed epsilon 8 in all that already spent part of it in another run;
    # the round is calibrated to spend 8 on its own.
    node = _node(tmp_path / "node")
    ledger_path = node / "state" / LEDGER_FILE
    ledger_path.parent.mkdir(parents=True)
    PrivacyLedger.open(ledger_path, node_id="node-x", max_epsilon=8.0, delta=1e-5).charge(
        noise_multiplier=2.0, sample_rate=1.0, steps=1, run_id="earlier", round=1
    )
    before = ledger_path.read_bytes()
    # Execute: the model path does not exist, so loading the model first would fail otherwise.
    with pytest.raises(BudgetExceededError, match="node-x") as info:
        _round(node, max_epsilon=8.0)
    # Assert: refused with the numbers, and nothing was charged.
    assert "8.0000" in str(info.value)
    assert ledger_path.read_bytes() == before


def test_a_run_asking_for_more_than_the_nodes_whole_budget_is_refused(tmp_path: Path) -> None:
    # A coordinator's target of 8 against an operator's budget of 0.5: refused up front.
    node = _node(tmp_path / "node")

    with pytest.raises(RoundRefusedError, match=r"target-epsilon=8\.0"):
        _round(node, max_epsilon=0.5)

    assert not (node / "state" / LEDGER_FILE).exists()


def test_within_budget_the_round_goes_on_to_load_the_model(tmp_path: Path) -> None:
    # The same round with room in the budget reaches the model (and fails there, as it must).
    node = _node(tmp_path / "node")
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        _round(node, max_epsilon=8.0)


def test_a_distributed_dp_round_charges_the_aggregate_noise_and_adds_a_share(
    tmp_path: Path,
) -> None:
    # Prepare: three noise shares, two rounds at epsilon 8 in all.
    node = _node(tmp_path / "node")
    settings = RoundSettings(
        num_server_rounds=2, run_tag="r", target_epsilon=8.0, dp_noise_shares=3
    )
    # Execute
    result = run_local_round(
        node_dir=node,
        node_name="node-x",
        global_state=_global_state(),
        settings=settings,
        server_round=1,
        node_privacy=NodePrivacy(max_epsilon=8.0),
    )
    # Assert: the ledger is charged at the noise a fellow member faces (the other two of
    # three shares, one full-batch step per round); the sum holds sqrt(3/2) times that and
    # this node adds 1/sqrt(3) of the sum.
    member_view = noise_multiplier_for(
        target_epsilon=8.0, target_delta=1e-5, sample_rate=1.0, steps=2
    )
    aggregate = member_view / (2 / 3) ** 0.5
    assert result.metrics[MetricKey.NOISE_MULTIPLIER.value] == pytest.approx(aggregate)
    assert result.metrics[MetricKey.NOISE_SHARE.value] == pytest.approx(aggregate / 3**0.5)
    # One full-batch step: the ledger reads the exact Gaussian-DP curve.
    expected = epsilon_for_mu(mu=steps_mu(noise_multiplier=member_view, steps=1), delta=1e-5)
    assert result.metrics[MetricKey.EPSILON.value] == pytest.approx(expected, rel=1e-6)
    assert 0 < result.metrics[MetricKey.EPSILON.value] < 8.0


def test_noise_shares_need_dp_and_no_update_clipping() -> None:
    with pytest.raises(FedembedError, match="noise-shares"):
        RoundSettings(num_server_rounds=1, run_tag="r", dp_enabled=False, dp_noise_shares=3)
    with pytest.raises(FedembedError, match="update-clip-norm"):
        RoundSettings(num_server_rounds=1, run_tag="r", dp_noise_shares=3, update_clip_norm=1.0)
