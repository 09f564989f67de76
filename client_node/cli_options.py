"""The checks and help texts of ``fedembed node``'s options (what an operator types)."""

from __future__ import annotations

import math
from pathlib import Path

import typer

__all__ = [
    "CHECK_HELP",
    "MAX_EPSILON_LIMIT",
    "REGISTER_FIX",
    "check_max_epsilon",
    "data_dir_exists",
]

MAX_EPSILON_LIMIT = 100.0
"""The largest ``--max-epsilon`` accepted.

Beyond it differential privacy bounds nothing an attacker cares about: the proven
membership-inference AUC bound is 1.0 long before (docs/observers.md), so a larger value
is a typo (an extra digit, an exponent), not a budget.
"""

REGISTER_FIX = (
    "ask the coordinator's operator to register this kit's auth.pub with the SuperLink "
    "before the node starts (docs/operations.md, 'Operating a consortium', step 5), and "
    "check that --kit and --superlink belong to the same consortium"
)
"""The fix ``node start`` prints when its SuperNode fails on its own."""


def check_max_epsilon(value: float) -> float:
    """``--max-epsilon``: finite, > 0 and at most :data:`MAX_EPSILON_LIMIT`."""
    if not (math.isfinite(value) and 0.0 < value <= MAX_EPSILON_LIMIT):
        raise typer.BadParameter(
            f"{value!r} is not a privacy budget: expected a finite number with "
            f"0 < --max-epsilon <= {MAX_EPSILON_LIMIT:g} (e.g. 8, the consortium default)"
        )
    return value


def data_dir_exists(value: Path) -> Path:
    """``--data-dir``: an existing folder, made absolute (the SuperNode's apps run elsewhere)."""
    if not value.is_dir():
        state = "is not a folder" if value.exists() else "does not exist"
        raise typer.BadParameter(
            f"{value} {state}: expected the node's data folder (the one holding "
            "documents.jsonl, interactions.jsonl and state/)"
        )
    return value.absolute()


CHECK_HELP = """Validate the node's documents and interactions (formats below).

The data folder (--data-dir) holds two JSON-lines files, one object a line.

documents.jsonl: the member's own documents
  "id"    a unique string or number
  "text"  the document's text (non-empty); other fields are kept as metadata
interactions.jsonl: private search interactions, one a line
  "query_id"   the query's id (string or number)
  "query"      the query text (non-empty)
  "doc_id"     the id of a document in documents.jsonl the user found relevant
  "person_id"  optional, on every line or on none

Example documents.jsonl:
  {"id": "d1", "text": "Aspirin lowers the risk of a second infarction."}
  {"id": "d2", "text": "Statins reduce LDL cholesterol."}
Example interactions.jsonl:
  {"query_id": "q1", "query": "aspirin after infarction", "doc_id": "d1"}
  {"query_id": "q2", "query": "cholesterol drugs", "doc_id": "d2"}

Privacy unit (what DP protects as one): all records of one person when the
lines carry person_id, otherwise all records of one query (same query_id or
same query text). The node keeps its ledger, caches and logs in state/ there.
"""
"""``fedembed node check --help``: the member data formats (client_node/node_data.py)."""
