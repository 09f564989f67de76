"""Threat: a rogue node, enrolled with a key outside the consortium's authorised list.

Whoever holds the CA certificate could register a SuperNode; here the rogue has a kit
of its own provision (its own key, its own node id or an authorised member's id) and
runs the real ClientApp, so its reply looks like every other: encrypted, of the right
length, signed. The real ``CkksFedAvg`` drops it and records the refusal, the round
aggregates the authorised nodes only (the decrypt request names exactly them), and no
member endorses or decrypts a sum that contains the rogue's contribution.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg

from coordinator.ckks_fedavg import CkksFedAvg
from coordinator.federation_ledger import FederationLedger
from embedding_core.adapter import Adapter, AdapterSide
from federation.contributions import DecryptionRefusedError, DecryptRequest
from federation.record_count_slot import uses_count_slot
from federation.records import CkksField
from federation.wire import ContentKey, MetricKey
from kits.loader import load_coordinator_kit
from tests.coordinator.grid import LoopbackNodes
from tests.privacy.ckks_nodes import (
    SETTINGS,
    Member,
    client_app,
    contribution_of,
    decrypt,
    endorse,
    provision_members,
    train,
)

MEMBERS = ["a", "b", "c"]


class RecordingLoopback(LoopbackNodes):
    """The tests' loopback grid, keeping every message the coordinator sent."""

    def __init__(self, app: ClientApp, node_configs: dict[int, dict[str, Any]]) -> None:
        super().__init__(app, node_configs)
        self.sent: list[Message] = []

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        messages = list(messages)
        self.sent.extend(messages)
        return super().send_and_receive(messages, timeout=timeout)


def _consortium(root: Path, rogue_id: str) -> tuple[list[Member], Member]:
    members = provision_members(root / "consortium", MEMBERS)
    (rogue,) = provision_members(root / "rogue", [rogue_id], first_flower_id=99)
    return members, rogue


@pytest.mark.usefixtures("server_app_process")
@pytest.mark.parametrize("rogue_id", ["rogue", "b"], ids=["own-id", "impersonates-b"])
def test_the_coordinator_drops_a_rogue_reply_and_aggregates_authorised_nodes(
    tmp_path: Path, rogue_id: str
) -> None:
    # Prepare: three members and a rogue SuperNode, all connected; t = 3.
    members, rogue = _consortium(tmp_path, rogue_id)
    grid = RecordingLoopback(
        client_app(), {m.flower_id: m.node_config() for m in [*members, rogue]}
    )
    kit = load_coordinator_kit(tmp_path / "consortium" / "kits" / "coordinator")
    strategy = CkksFedAvg(
        FedAvg(
            min_train_nodes=4, min_available_nodes=4, weighted_by_key=MetricKey.UNIT_WEIGHT.value
        ),
        public_context=kit.ckks_public_context,
        authorized_nodes=kit.authorized_nodes,
        min_replies=SETTINGS.dp_noise_shares,
        count_slot_clip=SETTINGS.max_grad_norm if uses_count_slot(SETTINGS) else 0.0,
    )
    ledger = FederationLedger(strategy, path=tmp_path / "federation_ledger.json")
    reference = ArrayRecord(Adapter(384, side=AdapterSide.QUERY, seed=0).state_dict())

    # Execute: one round, as the ServerApp runs it (the ledger outermost).
    asked = list(ledger.configure_train(1, reference, ConfigRecord(SETTINGS.to_record()), grid))
    replies = list(grid.send_and_receive(asked))
    arrays, _ = ledger.aggregate_train(1, replies)

    # Assert: the rogue answered like a member, yet only the members were summed.
    rogue_reply = next(r for r in replies if r.metadata.src_node_id == rogue.flower_id)
    assert not rogue_reply.has_error()
    assert contribution_of(rogue_reply)[1] == contribution_of(replies[0])[1]
    assert arrays is not None
    (asked_to_decrypt,) = [
        m for m in grid.sent if ContentKey.CKKS_DECRYPT.value in m.content.config_records
    ]
    request = DecryptRequest.from_record(
        dict(asked_to_decrypt.content.config_records[ContentKey.CKKS_DECRYPT.value])
    )
    assert sorted(c.node_id for c in request.contributions) == MEMBERS
    refusal = {
        "round": 1,
        "node": str(rogue.flower_id),
        "reason": "not signed by an authorised node key",
    }
    assert strategy.refusals == [refusal]
    # The published federation ledger records the rogue as refused, with no epsilon.
    assert ledger.refusals() == [refusal]
    assert str(rogue.flower_id) not in ledger.per_node_epsilon()


def test_members_refuse_a_sum_with_the_rogue_contribution(tmp_path: Path) -> None:
    # Prepare: every node, the rogue included, trained round 1.
    members, rogue = _consortium(tmp_path, "rogue")
    app = client_app()
    signed = {m.name: contribution_of(train(app, m, 1)) for m in [*members, rogue]}
    length = signed["a"][1]
    by_name = {m.name: m for m in members}

    def round_of(names: list[str]) -> tuple[dict[str, Message], Message]:
        contributions = [signed[n][0] for n in names]
        endorsements = endorse(app, by_name, contributions, 1)
        reply = decrypt(
            app, members[0], contributions, length=length, server_round=1, endorsements=endorsements
        )
        return endorsements, reply

    # Execute
    endorsed_with_rogue, with_rogue = round_of([*MEMBERS, "rogue"])
    _, members_only = round_of(MEMBERS)

    # Assert: no member endorses the set with the rogue inside and a refuses to decrypt
    # it (opaquely); the members' own sum then decrypts.
    for reply in [*endorsed_with_rogue.values(), with_rogue]:
        assert reply.has_error()
        assert reply.error.reason == str(DecryptionRefusedError())
    assert not members_only.has_error()
    released = members_only.content.array_records[ContentKey.ARRAYS.value][CkksField.SUM.value]
    assert released.numpy().shape == (length,)
