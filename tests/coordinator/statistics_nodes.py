"""What the statistics-round strategy tests (k-means, the classifier head) share.

A loopback grid of the consortium's three members that records every message sent and
every reply received, each member with a fresh ledger; the probe a curious coordinator
would send (a node asked to decrypt one contribution); and the checks every statistics
run must pass: each reply ciphertext and privacy bookkeeping only, one decrypted sum a
round, every ledger charged the run's epsilon in its rounds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.clientapp import ClientApp
from numpy.typing import NDArray

from client_node.client_app import make_client_app
from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from federation.contributions import DecryptRequest, SignedContribution
from federation.node_privacy import NodePrivacy
from federation.records import CkksField
from federation.wire import ContentKey, MetricKey, NodeConfigKey, as_bytes_list
from privacy import Observer
from tests.coordinator.grid import LoopbackNodes
from tests.coordinator.kmeans_consortium import NODES

__all__ = [
    "PRIVACY_METRICS",
    "RecordingLoopback",
    "assert_ciphertext_only",
    "assert_every_ledger_charged",
    "decrypted_sums",
    "ledger_of",
    "member_grid",
    "probe_single_decryption",
    "round_state",
]

PRIVACY_METRICS = {key.value for key in MetricKey} - {MetricKey.NUM_EXAMPLES.value}
"""What a node's statistics reply may report besides its ciphertext."""


class Members(Protocol):
    """A test consortium: its member folders and its kits."""

    kits: Path

    def node_dir(self, name: str) -> Path: ...


class RecordingLoopback(LoopbackNodes):
    """The loopback grid, keeping every message sent and every reply received."""

    def __init__(self, app: ClientApp, node_configs: dict[int, dict[str, Any]]) -> None:
        super().__init__(app, node_configs)
        self.sent: list[Message] = []
        self.received: list[Message] = []

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        self.sent.extend(messages)
        replies = list(super().send_and_receive(messages, timeout=timeout))
        self.received.extend(replies)
        return replies


def member_grid(
    members: Members, root: Path, budgets: dict[str, float], *, default_budget: float
) -> RecordingLoopback:
    """The three members under ``root`` (their records copied, fresh ledgers)."""
    configs: dict[int, dict[str, Any]] = {}
    for i, name in enumerate(NODES):
        folder = root / name  # a fresh ledger per test: copy the member's records
        folder.mkdir(parents=True)
        (folder / "records.csv").write_bytes((members.node_dir(name) / "records.csv").read_bytes())
        configs[10 + i] = {
            NodeConfigKey.DATA_DIR.value: str(folder),
            NodeConfigKey.NODE_NAME.value: name,
            NodeConfigKey.KIT_DIR.value: str(members.kits / "nodes" / name),
            **NodePrivacy(max_epsilon=budgets.get(name, default_budget)).to_node_config(),
        }
    return RecordingLoopback(make_client_app(), configs)


def ledger_of(root: Path, name: str) -> dict[str, Any]:
    """Member ``name``'s ledger document under ``root``."""
    document: dict[str, Any] = json.loads((root / name / STATE_DIR / LEDGER_FILE).read_text())
    return document


def probe_single_decryption(
    grid: RecordingLoopback, replies: list[Message], *, run_tag: str, length: int
) -> Message:
    """A curious coordinator's request: node 2 decrypts node 1's contribution alone."""
    record = replies[0].content.config_records[ContentKey.CKKS_UPDATE.value]
    single = SignedContribution.from_update(
        dict(record), as_bytes_list(record[CkksField.CHUNKS.value])
    )
    request = DecryptRequest(
        run_tag=run_tag,
        server_round=5,
        length=length,
        contributions=(single,),
        endorsements=(b"forged",),
    )
    (answer,) = grid.send_and_receive(
        [
            Message(
                RecordDict({ContentKey.CKKS_DECRYPT.value: request.to_record()}),
                dst_node_id=replies[1].metadata.src_node_id,
                message_type="query",
            )
        ]
    )
    return answer


def assert_ciphertext_only(replies: list[Message]) -> None:
    """Each reply holds one CKKS contribution and privacy metrics, no array, no error."""
    for reply in replies:
        assert not reply.has_error()
        assert len(reply.content.array_records) == 0
        assert set(reply.content.config_records) == {ContentKey.CKKS_UPDATE.value}
        assert set(reply.content.metric_records[ContentKey.METRICS.value]) <= PRIVACY_METRICS


def decrypted_sums(grid: RecordingLoopback) -> list[NDArray[np.float64]]:
    """Every plaintext the coordinator received: the decrypted sums, in order."""
    return [
        r.content.array_records[ContentKey.ARRAYS.value][CkksField.SUM.value].numpy()
        for r in grid.received
        if r.metadata.message_type == "query"
        and not r.has_error()
        and ContentKey.ARRAYS.value in r.content.array_records
    ]


def round_state(
    grid: RecordingLoopback, message_type: str, state_key: str, server_round: int
) -> ArrayRecord:
    """The public state the coordinator sent in round ``server_round``."""
    message = next(
        m
        for m in grid.sent
        if m.metadata.message_type == message_type
        and m.content.config_records[ContentKey.CONFIG.value]["server-round"] == server_round
    )
    return message.content.array_records[state_key]


def assert_every_ledger_charged(root: Path, *, run_id: str, epsilon: float, rounds: int) -> None:
    """Every member charged each round once, for a fellow member, composing to ``epsilon``."""
    for name in NODES:
        ledger = ledger_of(root, name)
        assert [e["round"] for e in ledger["entries"]] == list(range(1, rounds + 1))
        assert {e["run_id"] for e in ledger["entries"]} == {run_id}
        assert {e["observer"] for e in ledger["entries"]} == {Observer.FELLOW_MEMBER.value}
        assert ledger["entries"][-1]["epsilon_after"] == pytest.approx(epsilon, rel=1e-3)
