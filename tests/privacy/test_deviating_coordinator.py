"""Threat: a coordinator that asks a node for less privacy than the node's operator allows.

The real ClientApp ``train`` handler receives train messages a deviating coordinator
could send: DP switched off, more noise shares than the node accepts, a target epsilon
above the node's whole budget, settings the protocol does not define, and a round it
already answered. A node without an operator budget does not train at all. In every
case the node replies with a refusal, trains nothing and charges nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Context, Message, RecordDict

from client_node.client_app import train
from client_node.local_round import LEDGER_FILE
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings
from federation.wire import ERROR_CODE_NODE_REFUSED, SERVER_ROUND_KEY, NodeConfigKey
from privacy import PrivacyLedger
from tests.privacy.messages import train_message

HONEST = RoundSettings(
    num_server_rounds=2, run_tag="run-1", aggregation="plaintext", target_epsilon=4.0
)


def _node(folder: Path) -> Path:
    folder.mkdir()
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(3)]
    records = [{"query_id": f"q{i}", "query": f"question {i}", "doc_id": f"d{i}"} for i in range(2)]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _context(node: Path, operator: NodePrivacy | None) -> Context:
    node_config: dict[str, Any] = {
        NodeConfigKey.DATA_DIR.value: str(node),
        NodeConfigKey.NODE_NAME.value: "node-x",
    }
    if operator is not None:
        node_config.update(operator.to_node_config())
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})


def _ask(node: Path, record: dict[str, Any], operator: NodePrivacy | None) -> Message:
    return train(train_message(record), _context(node, operator))


def _refusal(reply: Message) -> str:
    assert reply.has_error(), "the node answered instead of refusing"
    assert reply.error.code == ERROR_CODE_NODE_REFUSED
    return reply.error.reason


OPERATOR = NodePrivacy(max_epsilon=8.0)
STRICT_NOISE = NodePrivacy(max_epsilon=8.0, min_noise_multiplier=50.0)


@pytest.mark.parametrize(
    ("deviation", "operator", "reason"),
    [
        ({"dp-enabled": False}, OPERATOR, "without DP"),
        ({"dp-noise-shares": 100}, OPERATOR, "dp-noise-shares=100"),
        ({"target-epsilon": 50.0}, OPERATOR, "more than its whole budget"),
        ({"noise-shares": 1}, OPERATOR, "unknown key 'noise-shares'"),
        ({}, None, "no privacy budget"),
        (
            {"target-epsilon": 8.0},
            NodePrivacy(max_epsilon=8.0, min_noise_multiplier=50.0),
            "below its minimum",
        ),
    ],
    ids=["dp-off", "t=100", "epsilon-above-budget", "unknown-key", "no-budget", "noise-below-min"],
)
def test_a_deviating_round_is_refused_and_nothing_is_charged(
    tmp_path: Path, deviation: dict[str, Any], operator: NodePrivacy | None, reason: str
) -> None:
    # Prepare
    node = _node(tmp_path / "node")
    record = {**HONEST.to_record(), SERVER_ROUND_KEY: 1, **deviation}
    # Execute
    reply = _ask(node, record, operator)
    # Assert: refused with the reason, no ledger entry, no ledger at all.
    assert reason in _refusal(reply)
    assert not (node / "state" / LEDGER_FILE).exists()


def test_a_replayed_round_is_refused_and_nothing_is_charged(tmp_path: Path) -> None:
    # Prepare: the node's ledger already holds round 1 of run-1.
    node = _node(tmp_path / "node")
    ledger_path = node / "state" / LEDGER_FILE
    ledger_path.parent.mkdir(parents=True)
    PrivacyLedger.open(ledger_path, node_id="node-x", max_epsilon=8.0, delta=1e-5).charge(
        noise_multiplier=5.0, sample_rate=1.0, steps=1, run_id="run-1", round=1
    )
    before = ledger_path.read_bytes()
    # Execute: the coordinator asks for round 1 again.
    reply = _ask(node, {**HONEST.to_record(), SERVER_ROUND_KEY: 1}, OPERATOR)
    # Assert
    assert "already trained" in _refusal(reply)
    assert ledger_path.read_bytes() == before
