"""The main job's comparison table charges every row to the members' own ledgers.

Every row of ``fedembed demo`` trains the same members' records, so the table shows each
member's cumulative epsilon after each row (issue: the demo bypassed the ledgers), and a
row trained without DP makes that member's cumulative epsilon infinite from then on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from fedembed.federated_demo import cumulative_epsilons, member_budget, member_epsilons
from privacy import PrivacyLedger


def test_member_budget_covers_every_dp_row() -> None:
    # Execute
    budget = member_budget((1.0, 2.0, 4.0, 8.0), 0.64)

    # Assert: the release, federated and distributed rows at each epsilon, one local row.
    assert budget == 0.64 + 2 * 15.0 + 8.0


def test_rows_without_dp_make_later_spend_infinite() -> None:
    # Prepare: the order the demo runs rows in.
    rows = [
        {"setting": "base", "ndcg@10": 0.6},
        {"setting": "release", "run_epsilon": 0.64, "epsilon_per_node": {"a": 0.64, "b": 0.64}},
        {
            "setting": "local only a, non-DP",
            "run_epsilon": math.inf,
            "epsilon_per_node": {"a": 0.64},
        },
        {
            "setting": "federated, DP eps=1",
            "run_epsilon": 1.0,
            "epsilon_per_node": {"a": 1.5, "b": 1.5},
        },
        {"setting": "centralised, non-DP", "run_epsilon": math.inf},
    ]

    # Execute
    cumulative_epsilons(rows)

    # Assert
    assert rows[1]["epsilon_per_node"] == {"a": 0.64, "b": 0.64}
    assert rows[2]["epsilon_per_node"] == {"a": math.inf}
    assert rows[3]["epsilon_per_node"] == {"a": math.inf, "b": 1.5}
    assert rows[4]["epsilon_per_node"] == {"a": math.inf, "b": math.inf}
    assert "epsilon_per_node" not in rows[0]


def test_member_epsilons_read_each_members_own_ledger(tmp_path: Path) -> None:
    # Prepare: member a charged twice (two runs), member b never.
    members = {"a": tmp_path / "a", "b": tmp_path / "b"}
    ledger = PrivacyLedger.open(
        members["a"] / STATE_DIR / LEDGER_FILE, node_id="a", max_epsilon=50.0, delta=1e-5
    )
    first = ledger.charge(noise_multiplier=5.0, sample_rate=1.0, steps=10, run_id="r1", round=1)
    second = ledger.charge(noise_multiplier=5.0, sample_rate=1.0, steps=10, run_id="r2", round=1)

    # Execute
    spent = member_epsilons(members)

    # Assert: the second run composes with the first; b has spent nothing.
    assert spent["a"] == second > first > 0
    assert spent["b"] == 0.0
    stored = json.loads((members["a"] / STATE_DIR / LEDGER_FILE).read_text())
    assert [e["run_id"] for e in stored["entries"]] == ["r1", "r2"]
