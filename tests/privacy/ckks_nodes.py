"""Member nodes for CKKS threat tests: provisioned kits, node folders, the real ClientApp.

Kits come from :func:`kits.provisioning.provision` and the member-side CKKS key
ceremony; each node folder holds a few records, as in ``test_deviating_coordinator``;
every message goes through the real ClientApp (its CKKS mod and its handlers).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, Metadata, RecordDict
from flwr.clientapp import ClientApp

from client_node.ckks_contribution import ERROR_CODE_DECRYPTION_REFUSED
from client_node.client_app import make_client_app
from embedding_core.adapter import Adapter, AdapterSide
from federation.contribution_endorsement import EndorseRequest
from federation.contributions import (
    ContributionField,
    DecryptionRefusedError,
    DecryptRequest,
    SignedContribution,
)
from federation.node_privacy import NodePrivacy
from federation.records import CkksField
from federation.round_settings import RoundSettings
from federation.wire import (
    CONTRIBUTION_SET_KEY,
    SERVER_ROUND_KEY,
    ContentKey,
    NodeConfigKey,
    as_bytes_list,
)
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision

__all__ = [
    "SETTINGS",
    "Member",
    "assert_refused",
    "client_app",
    "contribution_of",
    "decrypt",
    "endorse",
    "endorsement_of",
    "provision_members",
    "send",
    "train",
    "train_message",
]

SETTINGS = RoundSettings(
    num_server_rounds=2,
    run_tag="run-1",
    aggregation="ckks",
    target_epsilon=4.0,
    dp_noise_shares=3,
    batch_size=4096,
)
"""Distributed DP with t = 3 noise shares: a decryptable sum needs 3 signers."""

OPERATOR = NodePrivacy(max_epsilon=8.0)


@dataclass(frozen=True)
class Member:
    """One member: its kit, its data folder and its SuperNode context."""

    name: str
    flower_id: int
    kit: Path
    folder: Path

    def node_config(self) -> dict[str, Any]:
        return {
            NodeConfigKey.DATA_DIR.value: str(self.folder),
            NodeConfigKey.NODE_NAME.value: self.name,
            NodeConfigKey.KIT_DIR.value: str(self.kit),
            **OPERATOR.to_node_config(),
        }

    def context(self) -> Context:
        return Context(
            run_id=1,
            node_id=self.flower_id,
            node_config=self.node_config(),
            state=RecordDict(),
            run_config={},
        )


def _folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(3)]
    records = [{"query_id": f"q{i}", "query": f"question {i}", "doc_id": f"d{i}"} for i in range(2)]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def provision_members(root: Path, names: list[str], *, first_flower_id: int = 10) -> list[Member]:
    """Provision a consortium of ``names`` (kits and CKKS ceremony) with node folders."""
    result = provision(root / "kits", node_ids=names)
    run_ckks_ceremony(root / "kits")
    return [
        Member(name, first_flower_id + i, result.node_dirs[name], _folder(root / "members" / name))
        for i, name in enumerate(names)
    ]


def _metadata(message_type: str, dst: int, message_id: str) -> Metadata:
    return Metadata(
        run_id=1,
        message_id=message_id,
        src_node_id=1,
        dst_node_id=dst,
        reply_to_message_id="",
        group_id="1",
        created_at=time.time(),
        ttl=600.0,
        message_type=message_type,
    )


def send(app: ClientApp, member: Member, message_type: str, content: RecordDict) -> Message:
    """Deliver ``content`` to ``member``'s ClientApp as the coordinator would."""
    metadata = _metadata(message_type, member.flower_id, f"{message_type}-{member.name}")
    return app(Message(content, metadata=metadata), member.context())


def train_message(server_round: int, announced: list[str] | None = None) -> RecordDict:
    """A CKKS train message's content, announcing the set ``announced`` if given."""
    config: dict[str, Any] = {**SETTINGS.to_record(), SERVER_ROUND_KEY: server_round}
    if announced is not None:
        config[CONTRIBUTION_SET_KEY] = announced
    return RecordDict(
        {
            ContentKey.ARRAYS.value: ArrayRecord(
                Adapter(384, side=AdapterSide.QUERY, seed=0).state_dict()
            ),
            ContentKey.CONFIG.value: ConfigRecord(config),
        }
    )


def train(
    app: ClientApp, member: Member, server_round: int, *, announced: list[str] | None = None
) -> Message:
    """One CKKS training round on ``member`` (the reply carries its signed ciphertexts)."""
    reply = send(app, member, "train", train_message(server_round, announced))
    assert not reply.has_error(), reply.error.reason
    return reply


def contribution_of(reply: Message) -> tuple[SignedContribution, int]:
    """The signed contribution in a train reply, and its length."""
    record = reply.content.config_records[ContentKey.CKKS_UPDATE.value]
    chunks = as_bytes_list(record[CkksField.CHUNKS.value])
    length = record[CkksField.LENGTH.value]
    assert isinstance(length, int)
    return SignedContribution.from_update(dict(record), chunks), length


def client_app() -> ClientApp:
    """The node's real ClientApp (CKKS mod, train and query handlers)."""
    return make_client_app()


def endorse(
    app: ClientApp,
    members: dict[str, Member],
    contributions: list[SignedContribution],
    server_round: int,
) -> dict[str, Message]:
    """Ask every member named in ``contributions`` to endorse that set; their replies."""
    request = EndorseRequest(
        run_tag=SETTINGS.run_tag,
        server_round=server_round,
        node_ids=tuple(c.node_id for c in contributions),
        digests=tuple(c.digest for c in contributions),
        signatures=tuple(c.signature for c in contributions),
    )
    return {
        c.node_id: send(
            app,
            members[c.node_id],
            "query",
            RecordDict({ContentKey.CKKS_ENDORSE.value: request.to_record()}),
        )
        for c in contributions
        if c.node_id in members
    }


def endorsement_of(reply: Message | None) -> bytes:
    """The endorsement signature in a reply (empty when the node refused or was not asked)."""
    if reply is None or reply.has_error():
        return b""
    value = reply.content.config_records[ContentKey.CKKS_ENDORSE.value][
        ContributionField.ENDORSEMENT.value
    ]
    assert isinstance(value, bytes)
    return value


def decrypt(
    app: ClientApp,
    member: Member,
    contributions: list[SignedContribution],
    *,
    length: int,
    server_round: int,
    endorsements: dict[str, Message],
    announced: tuple[str, ...] = (),
) -> Message:
    """Ask ``member`` to decrypt the sum of ``contributions`` with the endorsements got.

    With ``announced``, the request names that set and carries no endorsements.
    """
    request = DecryptRequest(
        run_tag=SETTINGS.run_tag,
        server_round=server_round,
        length=length,
        contributions=tuple(contributions),
        endorsements=()
        if announced
        else tuple(endorsement_of(endorsements.get(c.node_id)) for c in contributions),
        members=announced,
    )
    content = RecordDict({ContentKey.CKKS_DECRYPT.value: request.to_record()})
    return send(app, member, "query", content)


def assert_refused(reply: Message) -> None:
    """The node's one opaque refusal: the same code and reason, no content."""
    assert reply.has_error(), "the node answered a request it must refuse"
    assert reply.error.code == ERROR_CODE_DECRYPTION_REFUSED
    assert reply.error.reason == str(DecryptionRefusedError())
    assert not reply.has_content()
