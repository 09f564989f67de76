"""What ``fedembed node ledger`` shows: the node's ledger per run and round, and refusals.

The privacy ledger (:mod:`privacy.ledger`) records each charge with the node's composed
epsilon after it; this view groups the charges by run and gives each round the epsilon
it added to the total. Refused rounds charge nothing and are not in the ledger: they
are read from the SuperNode logs the node writes into ``state/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from embedding_core.errors import FedembedError
from privacy import PrivacyLedger
from privacy.ledger_file import LedgerEntry

__all__ = ["LedgerView", "read_ledger_view"]


@dataclass(frozen=True)
class LedgerView:
    """A node's ledger as its operator reads it.

    Attributes:
        path: The ledger file.
        summary: :meth:`privacy.PrivacyLedger.summary` (``None``: nothing charged yet).
        runs: One entry per run, oldest first, each with its rounds.
        refusals: The rounds the node refused, as its SuperNode logs name them.
    """

    path: Path
    summary: dict[str, Any] | None
    runs: list[dict[str, Any]]
    refusals: list[str]

    def to_json(self) -> dict[str, Any]:
        """One JSON-ready document (the ``--json`` output)."""
        summary = self.summary or {"path": str(self.path), "spent_epsilon": 0.0, "entries": 0}
        return {**summary, "per_run": self.runs, "refusals": self.refusals}

    def lines(self) -> list[str]:
        """The ledger as text: the total, each run and round, the refusals."""
        if self.summary is None:
            out = [f"{self.path}: no round was ever charged (epsilon spent 0)"]
        else:
            s = self.summary
            out = [
                f"node {s['node_id']}: epsilon {s['spent_epsilon']:.4f} of "
                f"{s['max_epsilon']:g} spent (delta {s['delta']:g}, "
                f"{s['remaining_epsilon']:.4f} left), holds for a {s['observer']}"
            ]
        for run in self.runs:
            out.append(
                f"run {run['run']}: epsilon {run['epsilon_charged']:.4f} in "
                f"{len(run['rounds'])} round(s)"
            )
            out += [
                f"  round {r['round']:>3}  +{r['epsilon_charged']:.4f}  -> "
                f"{r['epsilon_after']:.4f}  {r['observer']:<14} noise {r['noise_multiplier']:g} "
                f"rate {r['sample_rate']:g} steps {r['steps']}"
                for r in run["rounds"]
            ]
        out.append(f"refused rounds: {len(self.refusals)}")
        out += [f"  {line}" for line in self.refusals]
        return out


def _per_run(entries: list[LedgerEntry]) -> list[dict[str, Any]]:
    """The charges grouped by run, each round with the epsilon it added to the total."""
    runs: dict[str, dict[str, Any]] = {}
    before = 0.0
    for entry in entries:
        after = float(entry["epsilon_after"])
        charged = max(0.0, after - before)
        run = runs.setdefault(
            entry["run_id"], {"run": entry["run_id"], "epsilon_charged": 0.0, "rounds": []}
        )
        run["epsilon_charged"] += charged
        run["rounds"].append(
            {
                "round": int(entry["round"]),
                "epsilon_charged": charged,
                "epsilon_after": after,
                "observer": entry["observer"],
                "noise_multiplier": float(entry["noise_multiplier"]),
                "sample_rate": float(entry["sample_rate"]),
                "steps": int(entry["steps"]),
                "time": entry["timestamp"],
            }
        )
        before = after
    return list(runs.values())


def _refusals(state_dir: Path) -> list[str]:
    """Rounds the node refused, from its SuperNode logs in ``state/`` (oldest first)."""
    lines: list[str] = []
    for log in sorted(state_dir.glob("supernode-*.log")):
        lines += [
            line.split("train: ", 1)[1].strip()
            for line in log.read_text(errors="replace").splitlines()
            if "train: node=" in line and " refused: " in line
        ]
    return lines


def read_ledger_view(data_dir: Path) -> LedgerView:
    """Read the ledger and refusals of the node whose data folder is ``data_dir``.

    Raises:
        FedembedError: The ledger file exists but cannot be read.
    """
    state = data_dir / STATE_DIR
    path = state / LEDGER_FILE
    refusals = _refusals(state)
    if not path.is_file():
        return LedgerView(path, None, [], refusals)
    try:
        document = json.loads(path.read_text())
        ledger = PrivacyLedger.open(
            path,
            node_id=str(document["node_id"]),
            max_epsilon=float(document["max_epsilon"]),
            delta=float(document["delta"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise FedembedError(
            f"the privacy ledger {path} cannot be read ({type(exc).__name__})",
            expected="the ledger file the node writes",
            fix="restore it from a backup: a reset ledger would forget what was spent",
        ) from None
    return LedgerView(path, ledger.summary(), _per_run(ledger.entries), refusals)
