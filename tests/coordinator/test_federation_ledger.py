from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from coordinator.federation_ledger import FederationLedger
from privacy.analysis import epsilon_for_mu, rdp_epsilon, steps_mu
from tests.coordinator.grid import start_round
from tests.coordinator.replies import train_reply

GLOBAL = ArrayRecord({"w": Array(np.zeros(4, dtype=np.float32))})
NODES = [1, 2, 3]


def _reply(node: int, value: float) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.full(4, value, dtype=np.float32))}),
            "metrics": MetricRecord({"num-examples": 1, "unit-weight": 1.0, "epsilon": 2.5}),
        }
    )
    return train_reply(content, node)


def _ledger(tmp_path: Path, noise: float) -> FederationLedger:
    inner = FedAvg(min_train_nodes=1, min_available_nodes=1, weighted_by_key="unit-weight")
    ledger = FederationLedger(
        inner, path=tmp_path / "ledger.json", node_noise_multiplier=noise, total_nodes=10
    )
    start_round(ledger, 1, GLOBAL, NODES)  # 3 of the 10 nodes are connected and sampled
    return ledger


def test_records_per_node_epsilon_and_node_level_accounting(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, noise=1.0)

    arrays, _ = ledger.aggregate_train(1, [_reply(1, 0.1), _reply(2, 0.2), _reply(3, 0.3)])

    assert arrays is not None
    assert ledger.per_node_epsilon() == {"1": 2.5, "2": 2.5, "3": 2.5}
    assert ledger.node_level_epsilon is not None
    assert ledger.node_level_epsilon > 0
    saved = json.loads((tmp_path / "ledger.json").read_text())
    assert saved["rounds"][0]["released"] is True
    # Every epsilon says whom it holds for: nodes charge a fellow member's view.
    assert saved["sample_level"]["observer"] == "fellow-member"
    assert "coordinator" in saved["sample_level"]["holds_for"]


def test_node_level_epsilon_is_exact_when_every_node_takes_part(tmp_path: Path) -> None:
    # Prepare: 3 of 3 nodes per round, so the node-level mechanism is not subsampled.
    inner = FedAvg(min_train_nodes=1, min_available_nodes=1, weighted_by_key="unit-weight")
    ledger = FederationLedger(
        inner, path=tmp_path / "ledger.json", node_noise_multiplier=2.0, total_nodes=3
    )

    # Execute: two rounds.
    for server_round in (1, 2):
        start_round(ledger, server_round, GLOBAL, NODES)
        ledger.aggregate_train(server_round, [_reply(1, 0.1), _reply(2, 0.2), _reply(3, 0.3)])

    # Assert: replace-one moves the mean by 2C/m against noise zC/m, so two rounds at
    # z = 2 are exactly sqrt(2) * 2 / 2-GDP; RDP would say more.
    exact = epsilon_for_mu(mu=steps_mu(noise_multiplier=2.0 / 2, steps=2), delta=1e-5)
    assert ledger.node_level_epsilon == pytest.approx(exact, rel=1e-9)
    assert exact < rdp_epsilon(noise_multiplier=1.0, sample_rate=1.0, steps=2, delta=1e-5)
    node_level = json.loads((tmp_path / "ledger.json").read_text())["node_level"]
    assert node_level["neighbour_relation"] == "replace-one"
    assert node_level["sampling"] == "m of N without replacement"
    assert node_level["delta"] == 1e-5
    assert "pld" in node_level["accountant"]
    assert "coordinator" in node_level["not_for"]


def test_node_level_dp_withholds_release_when_a_sampled_node_is_missing(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, noise=1.0)

    arrays, metrics = ledger.aggregate_train(1, [_reply(1, 0.1), _reply(2, 0.2)])

    assert arrays is None
    assert metrics is None
    assert ledger.node_level_epsilon is None
    assert ledger.rounds[0]["released"] is False


def test_without_node_level_dp_fewer_replies_are_fine(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, noise=0.0)

    arrays, _ = ledger.aggregate_train(1, [_reply(1, 0.1), _reply(2, 0.3)])

    assert arrays is not None
    np.testing.assert_allclose(arrays["w"].numpy(), 0.2, atol=1e-6)


def test_each_round_logs_its_replies_and_time_without_node_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: a run of 5 rounds, three nodes sampled.
    inner = FedAvg(min_train_nodes=1, min_available_nodes=1, weighted_by_key="unit-weight")
    ledger = FederationLedger(inner, path=tmp_path / "ledger.json", num_rounds=5)
    start_round(ledger, 3, GLOBAL, NODES)
    caplog.set_level("INFO", logger="coordinator.federation_ledger")

    # Execute
    ledger.aggregate_train(3, [_reply(1, 0.1), _reply(2, 0.2), _reply(3, 0.3)])

    # Assert
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("round ")]
    assert len(lines) == 1
    assert re.fullmatch(
        r"round 3/5: 3 replies of 3 sampled, 0 refused, aggregated, \d+\.\d s", lines[0]
    )
