"""The refusals every DP statistics round (k-means, the classifier head) must make.

Each task's test module (``test_kmeans_round``, ``test_classifier_round``) runs these
checks on its own round: a round over the operator's budget is refused before the
ledger is opened, a ledger without room refuses the round and is charged nothing, and a
replayed round is refused. ``run_round(server_round, budget)`` runs the task's round for
node ``node-a`` (target epsilon 4) with the operator's budget ``budget``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from federation.node_privacy import RoundRefusedError
from privacy import PrivacyLedger
from privacy.ledger_errors import BudgetExceededError, LedgerError

__all__ = [
    "check_a_ledger_without_room_is_charged_nothing",
    "check_a_replayed_round_is_refused",
    "check_the_operators_budget_is_enforced_first",
    "node_ledger",
    "write_node_records",
]

RunRound = Callable[[int, float], object]
"""``run_round(server_round, budget)``: the task's round for ``node-a``."""


def write_node_records(folder: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    """A node folder with ``records.csv`` (``header`` then ``rows``)."""
    folder.mkdir()
    with (folder / "records.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return folder


def node_ledger(node_dir: Path) -> PrivacyLedger:
    """``node-a``'s ledger (budget 8, delta 1e-5)."""
    return PrivacyLedger.open(
        node_dir / STATE_DIR / LEDGER_FILE, node_id="node-a", max_epsilon=8.0, delta=1e-5
    )


def check_the_operators_budget_is_enforced_first(node_dir: Path, run_round: RunRound) -> None:
    """A run over the operator's budget is refused before the ledger exists."""
    with pytest.raises(RoundRefusedError, match=r"node-a refuses a run with target-epsilon=4\.0"):
        run_round(1, 2.0)
    assert not (node_dir / STATE_DIR / LEDGER_FILE).exists()


def check_a_ledger_without_room_is_charged_nothing(node_dir: Path, run_round: RunRound) -> None:
    """An earlier run spent most of the 8: the round is refused, nothing is charged."""
    ledger = node_ledger(node_dir)
    ledger.charge(noise_multiplier=0.61, sample_rate=1.0, steps=1, run_id="earlier", round=1)
    before = ledger.spent_epsilon()
    with pytest.raises(BudgetExceededError):
        run_round(1, 8.0)
    assert node_ledger(node_dir).spent_epsilon() == before


def check_a_replayed_round_is_refused(node_dir: Path, run_round: RunRound) -> None:
    """The same round of the same run, a second time, is refused and charged once."""
    run_round(1, 8.0)
    with pytest.raises(LedgerError):
        run_round(1, 8.0)
    assert len(node_ledger(node_dir).entries) == 1
