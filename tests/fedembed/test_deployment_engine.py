"""End-to-end on Flower's deployment engine: real SuperLink + 3 SuperNodes over TLS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedding_core.adapter import Adapter
from privacy import noise_multiplier_for
from tests.fedembed.conftest import NODES, SUBSET_NAME, Consortium


def _run(c: Consortium, out: Path, **overrides: object) -> dict[str, object]:
    config: dict[str, object] = {
        "num-server-rounds": 2,
        "aggregation": "ckks",
        "eval-dataset": SUBSET_NAME,
        "data-dir": str(c.data_root),
        "min-nodes": 3,
        "batch-size": 32,
        "learning-rate": 0.01,
        "target-epsilon": 8.0,
        "update-clip-norm": 5.0,
        **overrides,
    }
    return c.loopback.run(config, out_dir=out)  # pytest-timeout guards a hang


@pytest.mark.slow  # minutes on 2 cores: `make test-all` runs it (benchmarks/RESULTS.md, CI row)
def test_ckks_dp_federation_then_budget_refusal(consortium: Consortium, tmp_path: Path) -> None:
    consortium.start_fresh_nodes(max_epsilon=8.0)

    summary = _run(consortium, tmp_path / "run1")

    per_node = summary["per_node_epsilon"]
    assert isinstance(per_node, dict)
    assert len(per_node) == 3
    assert all(0 < eps <= 8.0 + 1e-6 for eps in per_node.values())
    assert summary["refusals"] == []
    rounds = summary["ndcg@10_per_round"]
    assert isinstance(rounds, dict)
    assert set(rounds) == {"0", "1", "2"}
    adapter = Adapter.load(tmp_path / "run1" / "global_adapter")
    assert adapter.metadata["aggregation"] == "ckks"
    for name in NODES:
        ledger = consortium.ledger(name)
        assert ledger["node_id"] == name

    # Same nodes, budget already spent: every node refuses and the coordinator says who and why.
    # One round is enough: a node refuses before it loads the model or trains.
    again = _run(consortium, tmp_path / "run2", **{"run-tag": "second", "num-server-rounds": 1})

    refusals = again["refusals"]
    assert isinstance(refusals, list)
    assert len(refusals) >= 3
    reasons = " ".join(r["reason"] for r in refusals)
    assert all(name in reasons for name in NODES)
    assert "budget" in reasons.lower()


@pytest.mark.slow
@pytest.mark.timeout(3600)  # three rounds with a restart: past pytest-timeout's default
def test_node_killed_mid_round_round_completes_and_node_rejoins(
    consortium: Consortium, tmp_path: Path
) -> None:
    import threading
    import time

    consortium.start_fresh_nodes()
    out = tmp_path / "faulty"
    outcome: dict[str, dict[str, object]] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(
            summary=_run(consortium, out, **{"num-server-rounds": 3, "min-nodes": 2})
        ),
        daemon=True,
    )
    runner.start()
    superlink = consortium.superlink
    assert superlink is not None
    deadline = time.monotonic() + 1800  # generous: only a stuck federation runs out
    while superlink.log().count("GetFab") < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    consortium.nodes["node-2"].kill()  # mid-round 1: the node is fetching/training
    ledger = out / "federation_ledger.json"
    while not ledger.exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert ledger.exists(), "round 1 never completed without the killed node"
    consortium.start_node("node-2")  # rejoins with the same kit and key

    runner.join()  # the run ends by itself (flwr run's own limit) or pytest-timeout fires

    summary = outcome["summary"]
    rounds = json.loads(ledger.read_text())["rounds"]
    first = rounds[0]
    assert first["released"] is True
    assert sum("error" not in r for r in first["nodes"].values()) == 2
    assert any(sum("error" not in r for r in later["nodes"].values()) == 3 for later in rounds[1:])
    assert summary["rounds"] == 3


@pytest.mark.slow  # minutes on 2 cores: `make test-all` runs it (benchmarks/RESULTS.md, CI row)
def test_distributed_dp_over_ckks_charges_the_secure_sum(
    consortium: Consortium, tmp_path: Path
) -> None:
    # Prepare: fresh ledgers; three noise shares, so all three nodes must reply.
    consortium.start_fresh_nodes(max_epsilon=8.0)

    # Execute: one noisy full-batch gradient step per node and round, Adam on the coordinator.
    summary = _run(
        consortium,
        tmp_path / "distributed",
        **{
            "num-server-rounds": 2,
            "dp-noise-shares": 3,
            "server-learning-rate": 0.003,
            "local-epochs": 1,
            "batch-size": 4096,
            "learning-rate": 1.0,
            "update-clip-norm": 0.0,
        },
    )

    # Assert: every node charged its ledger at the noise of the sum, one step per round.
    aggregate = noise_multiplier_for(
        target_epsilon=8.0, target_delta=1e-5, sample_rate=1.0, steps=2
    )
    per_node = summary["per_node_epsilon"]
    assert isinstance(per_node, dict)
    assert len(per_node) == 3
    assert all(0 < eps <= 8.0 + 1e-6 for eps in per_node.values())
    assert summary["dp_noise_shares"] == 3
    for name in NODES:
        ledger = consortium.ledger(name)
        assert [(e["round"], e["steps"], e["sample_rate"]) for e in ledger["entries"]] == [
            (1, 1, 1.0),
            (2, 1, 1.0),
        ]
        assert all(e["noise_multiplier"] == pytest.approx(aggregate) for e in ledger["entries"])
    # Adam's first steps move every weight: the released adapter is not the initial one.
    adapter = Adapter.load(tmp_path / "distributed" / "global_adapter")
    assert adapter.linear is not None
    assert float(adapter.linear.weight.detach().abs().min()) > 0
    assert set(summary["ndcg@10_per_round"]) == {"0", "1", "2"}  # type: ignore[arg-type]
