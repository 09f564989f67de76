"""SecAgg+ aggregation mode: Flower's SecAgg+ protocol on both sides of the federation.

The fast tests drive the real ``SecAggPlusWorkflow`` and ``secaggplus_mod`` (and this
project's strategy and NumPyClient) through an in-process grid, with the local round
replaced by fixed updates, and compare the unmasked aggregate with plaintext FedAvg.
The slow test runs 3 virtual nodes on Flower's simulation engine with DP-SGD.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy.aggregate import aggregate

import client_node.secaggplus_client as secaggplus_client
from client_node.client_app import make_client_app
from client_node.local_round import LEDGER_FILE, LocalResult
from client_node.node_data import STATE_DIR
from coordinator.secaggplus_app import make_secaggplus_server_app, make_workflow
from coordinator.secaggplus_strategy import SecAggPlusFedAvg
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.errors import FedembedError
from fedembed.simulation import run_simulated_secaggplus_federation
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings
from federation.run_config import FederationConfig
from federation.secaggplus_params import SECAGGPLUS, SecAggPlusParams, quantization_tolerance
from federation.wire import MetricKey
from tests.coordinator.grid import LoopbackNodes
from tests.fedembed.conftest import SUBSET_NAME

NODE_IDS = (101, 202, 303)
RECORDS = {"node-0": 70, "node-1": 85, "node-2": 95}
CLIP = 0.5
OPERATOR = NodePrivacy(
    max_epsilon=8.0, public_record_count=True
)  # operators' bounds; counts public
DIM = 16


def _deltas(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Per node: an update of norm <= CLIP (values ~1e-2, like a DP-SGD round's)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in RECORDS:
        delta = {
            "linear.weight": torch.randn(DIM, DIM, generator=gen) * 1e-2,
            "linear.bias": torch.randn(DIM, generator=gen) * 1e-2,
        }
        norm = math.sqrt(sum(float((d * d).sum()) for d in delta.values()))
        out[name] = {k: v * min(1.0, CLIP / norm) for k, v in delta.items()}
    return out


def _config(tmp_path: Path, rounds: int) -> FederationConfig:
    return FederationConfig(
        num_server_rounds=rounds,
        aggregation=SECAGGPLUS,
        embedding_dim=DIM,
        dp_enabled=False,
        update_clip_norm=CLIP,
        min_nodes=3,
        out_dir=str(tmp_path / "out"),
        round_timeout=60.0,
        weighting="declared-counts",  # the test compares with count-weighted FedAvg
    )


def _run_loopback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    rounds: int,
    refuse: frozenset[str] = frozenset(),
    router: bool = False,
    params: SecAggPlusParams | None = None,
) -> tuple[SecAggPlusFedAvg, dict[int, dict[str, dict[str, torch.Tensor]]], list[Any]]:
    """Run the SecAgg+ workflow in-process; returns strategy, updates per round, globals."""
    updates = {r: _deltas(r) for r in range(1, rounds + 1)}
    globals_seen: list[Any] = []

    def fake_round(
        *,
        node_dir: str,
        node_name: str,
        global_state: dict[str, torch.Tensor],
        settings: RoundSettings,
        server_round: int,
        node_privacy: NodePrivacy,
    ) -> LocalResult:
        if node_name in refuse:
            raise FedembedError(f"node {node_name} would exceed its privacy budget")
        globals_seen.append((server_round, node_name, global_state))
        delta = updates[server_round][node_name]
        return LocalResult(
            state={k: global_state[k] + delta[k] for k in global_state},
            metrics={
                MetricKey.NUM_EXAMPLES.value: float(RECORDS[node_name]),
                MetricKey.EPSILON.value: 0.5 * server_round,
            },
        )

    monkeypatch.setattr(secaggplus_client, "run_local_round", fake_round)
    config = _config(tmp_path, rounds)
    initial = Adapter(DIM, kind=config.adapter_kind, side=AdapterSide.QUERY).state_dict()
    params = params or SecAggPlusParams()
    strategy = SecAggPlusFedAvg(
        config,
        names=list(initial),
        initial=[t.numpy() for t in initial.values()],
        ledger_path=tmp_path / "out" / "ledger.json",
        params=params,
    )
    client = (
        make_client_app(mods=[secaggplus_client.secaggplus_router_mod])
        if router
        else secaggplus_client.make_secaggplus_client_app()
    )
    grid = LoopbackNodes(
        client,
        {
            nid: {"data-dir": str(tmp_path), "node-name": name, **OPERATOR.to_node_config()}
            for nid, name in zip(NODE_IDS, RECORDS, strict=True)
        },
    )
    server_context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    legacy = LegacyContext(
        context=server_context, config=ServerConfig(num_rounds=rounds), strategy=strategy
    )
    make_workflow(config, params)(grid, legacy)
    return strategy, updates, globals_seen


def _plaintext_fedavg(
    global_arrays: list[np.ndarray], deltas: dict[str, dict[str, torch.Tensor]], names: list[str]
) -> list[np.ndarray]:
    """Flower's plaintext FedAvg (weighted by records) over the nodes' new weights."""
    results = [
        ([g + d[n].numpy() for g, n in zip(global_arrays, names, strict=True)], RECORDS[node])
        for node, d in deltas.items()
    ]
    return aggregate(results)


@pytest.mark.usefixtures("server_app_process")  # the loopback runs the ServerApp here
@pytest.mark.parametrize("router", [False, True], ids=["secaggplus-app", "routed-client-app"])
def test_secaggplus_aggregate_equals_plaintext_fedavg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, router: bool
) -> None:
    strategy, updates, seen = _run_loopback(tmp_path, monkeypatch, rounds=2, router=router)

    names = strategy.names
    tolerance = quantization_tolerance(
        num_nodes=3,
        total_weight=sum(RECORDS.values()),
        max_weight=strategy.params.max_weight,
        clipping_range=strategy.clipping_range,
        quantization_range=strategy.params.quantization_range,
    )
    assert strategy.clipping_range == CLIP  # the clip norm bounds every value: no clipping
    assert tolerance < 1e-4  # far below the updates' scale (1e-2)
    # Round 1 starts from the zero adapter; round 2 from what SecAgg+ released.
    expected = [np.zeros_like(a) for a in strategy.arrays().to_numpy_ndarrays()]
    for server_round in (1, 2):
        round_globals = [g for r, _, g in seen if r == server_round]
        assert len(round_globals) == 3
        received = [round_globals[0][n].numpy() for n in names]
        for got, want in zip(received, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=3 * tolerance)
        expected = _plaintext_fedavg(received, updates[server_round], names)
    for got, want in zip(strategy.global_arrays, expected, strict=True):
        error = np.abs(got.astype(np.float64) - want).max()
        assert error <= tolerance + 1e-6 * np.abs(want).max(), (error, tolerance)
        assert error > 0 or np.abs(want).max() == 0  # it is quantized, not passed through
    # The coordinator holds the mean only; the ledger has every node's report.
    ledger = json.loads((tmp_path / "out" / "ledger.json").read_text())
    assert [r["released"] for r in ledger["rounds"]] == [True, True]
    assert set(ledger["rounds"][1]["nodes"]) == {str(n) for n in NODE_IDS}
    assert ledger["sample_level"]["per_node_epsilon"] == {str(n): 1.0 for n in NODE_IDS}


@pytest.mark.usefixtures("server_app_process")  # the loopback runs the ServerApp here
def test_secaggplus_survives_a_refusing_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy, updates, _ = _run_loopback(
        tmp_path, monkeypatch, rounds=1, refuse=frozenset({"node-1"})
    )

    survivors = {k: v for k, v in updates[1].items() if k != "node-1"}
    zero = [np.zeros_like(a) for a in strategy.global_arrays]
    expected = _plaintext_fedavg(zero, survivors, strategy.names)
    tolerance = quantization_tolerance(
        num_nodes=2,
        total_weight=RECORDS["node-0"] + RECORDS["node-2"],
        max_weight=strategy.params.max_weight,
        clipping_range=strategy.clipping_range,
        quantization_range=strategy.params.quantization_range,
    )
    for got, want in zip(strategy.global_arrays, expected, strict=True):
        assert np.abs(got - want).max() <= tolerance + 1e-6 * np.abs(want).max()
    (entry,) = strategy.ledger.rounds
    assert entry["released"] is True
    (refusal,) = strategy.ledger.refusals()
    assert refusal["node"] == str(NODE_IDS[1])
    assert "node-1" in refusal["reason"]
    assert "privacy budget" in refusal["reason"]


@pytest.mark.usefixtures("server_app_process")  # the loopback runs the ServerApp here
def test_secaggplus_withholds_an_aggregate_it_cannot_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # node-2 weighs 95 records > max_weight: SecAgg+ may have clipped its values.
    strategy, _, _ = _run_loopback(
        tmp_path, monkeypatch, rounds=1, params=SecAggPlusParams(max_weight=90.0)
    )

    assert [r["released"] for r in strategy.ledger.rounds] == [False]
    assert all(not a.any() for a in strategy.global_arrays)  # still the initial adapter


def test_secaggplus_config_checks(tmp_path: Path) -> None:
    base = _config(tmp_path, 1)
    # The run config itself refuses what SecAgg+ cannot do.
    with pytest.raises(FedembedError, match="node-noise-multiplier"):
        FederationConfig(**{**base.__dict__, "node_noise_multiplier": 1.0})
    with pytest.raises(FedembedError, match="min-nodes"):
        FederationConfig(**{**base.__dict__, "min_nodes": 1})
    # A valid run of another mode is refused by the SecAgg+ app.
    ckks = FederationConfig(**{**base.__dict__, "aggregation": "ckks", "coordinator_kit": "kit"})
    with pytest.raises(FedembedError, match="SecAgg"):
        make_secaggplus_server_app(ckks)


@pytest.mark.slow
def test_secaggplus_on_simulation_engine_with_dp(
    consortium_data: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    data_root, node_dirs = consortium_data
    members = tmp_path / "members"
    for name, folder in node_dirs.items():  # own copies: fresh privacy ledgers
        shutil.copytree(folder, members / name)
        (members / name / STATE_DIR / LEDGER_FILE).unlink(missing_ok=True)
    config = FederationConfig(
        num_server_rounds=2,
        aggregation=SECAGGPLUS,
        dp_enabled=True,
        target_epsilon=8.0,
        update_clip_norm=5.0,
        min_nodes=3,
        batch_size=32,
        learning_rate=0.01,
        eval_dataset=SUBSET_NAME,
        data_dir=str(data_root),
        out_dir=str(tmp_path / "out"),
        run_tag="secaggplus-test",
    )

    summary = run_simulated_secaggplus_federation(
        config,
        partition_root=members,
        num_nodes=3,
        node_privacy=NodePrivacy(max_epsilon=8.0),
    )

    assert summary["aggregation"] == SECAGGPLUS
    per_round = summary["ndcg@10_per_round"]
    assert set(per_round) == {"0", "1", "2"}
    assert all(0.0 < v <= 1.0 for v in per_round.values())
    assert per_round["2"] != per_round["0"]  # the adapter moved
    assert summary["refusals"] == []
    per_node = summary["per_node_epsilon"]
    assert len(per_node) == 3
    assert all(0 < eps <= 8.0 for eps in per_node.values())
    for name in node_dirs:
        ledger = json.loads((members / name / STATE_DIR / LEDGER_FILE).read_text())
        entries = ledger["entries"]
        assert [e["round"] for e in entries] == [1, 2]
        assert {e["run_id"] for e in entries} == {"secaggplus-test"}
    adapter = Adapter.load(tmp_path / "out" / "global_adapter")
    manifest = Adapter.read_manifest(tmp_path / "out" / "global_adapter")
    assert manifest["metadata"]["aggregation"] == SECAGGPLUS
    assert float(adapter.state_dict()["linear.weight"].abs().max()) > 0
