"""End-to-end on Flower's deployment engine: real SuperLink + 3 SuperNodes over TLS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.local_deployment import flwr_run
from embedding_core.adapter import Adapter
from tests.federation.conftest import CONNECTION, NODES, SUBSET_NAME, Consortium

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(c: Consortium, out: Path, **overrides: object) -> dict[str, object]:
    config: dict[str, object] = {
        "num-server-rounds": 2,
        "aggregation": "ckks",
        "coordinator-kit": str(c.kits / "coordinator"),
        "eval-dataset": SUBSET_NAME,
        "data-dir": str(c.data_root),
        "out-dir": str(out),
        "min-nodes": 3,
        "batch-size": 32,
        "learning-rate": 0.01,
        "target-epsilon": 8.0,
        "update-clip-norm": 5.0,
        **overrides,
    }
    result = flwr_run(
        project_dir=REPO_ROOT,
        connection=CONNECTION,
        flwr_home=c.flwr_home,
        run_config=config,
        timeout=900,
        log_path=out / "flwr-run.log",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    history = out / "history.json"
    assert history.exists(), (
        result.stdout[-3000:]
        + "\n".join(n.log()[-2000:] for n in c.nodes.values())
        + c.superlink.log()[-3000:]  # type: ignore[union-attr]
    )
    return json.loads(history.read_text())


def test_ckks_dp_federation_then_budget_refusal(consortium: Consortium, tmp_path: Path) -> None:
    for folder in consortium.node_dirs.values():
        (folder / "state" / "privacy_ledger.json").unlink(missing_ok=True)
    for name in NODES:
        consortium.start_node(name, max_epsilon=8.0)

    summary = _run(consortium, tmp_path / "run1")

    per_node = summary["per_node_epsilon"]
    assert isinstance(per_node, dict) and len(per_node) == 3
    assert all(0 < eps <= 8.0 + 1e-6 for eps in per_node.values())
    assert summary["refusals"] == []
    rounds = summary["ndcg@10_per_round"]
    assert isinstance(rounds, dict) and set(rounds) == {"0", "1", "2"}
    adapter = Adapter.load(tmp_path / "run1" / "global_adapter")
    assert adapter.metadata["aggregation"] == "ckks"
    for name in NODES:
        ledger = json.loads(
            (consortium.node_dirs[name] / "state" / "privacy_ledger.json").read_text()
        )
        assert ledger["node_id"] == name

    # Same nodes, budget already spent: every node refuses and the coordinator says who and why.
    again = _run(consortium, tmp_path / "run2", **{"run-tag": "second"})

    refusals = again["refusals"]
    assert isinstance(refusals, list) and len(refusals) >= 3
    reasons = " ".join(r["reason"] for r in refusals)
    assert all(name in reasons for name in NODES)
    assert "budget" in reasons.lower()
