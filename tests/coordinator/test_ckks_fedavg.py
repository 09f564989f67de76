"""CKKS FedAvg: only signed contributions of authorised nodes count, once per node id,
and a sum of fewer noise shares than promised is never decrypted."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from coordinator.ckks_fedavg import CkksFedAvg
from crypto.ckks_aggregation import context_fingerprint, encrypt_vector, make_contexts
from crypto.contribution_signature import ContributionSigner
from federation.contributions import ContributionBinding, SignedContribution, ciphertext_digest
from federation.records import CkksField
from federation.round_settings import RoundSettings
from federation.wire import ContentKey, MetricKey
from tests.coordinator.grid import start_round
from tests.coordinator.replies import train_reply

REFERENCE = ArrayRecord({"w": Array(np.zeros(4, dtype=np.float32))})
SECRET, PUBLIC = make_contexts()
KEYS = {name: ec.generate_private_key(ec.SECP384R1()) for name in ("n1", "n2", "n3", "rogue")}
AUTHORIZED = {
    name: key.public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
    for name, key in KEYS.items()
    if name != "rogue"
}


def _reply(node: int, *, signer: str | None, node_id: str, server_round: int = 1) -> Message:
    chunks = encrypt_vector(np.ones(4) * 10.0, SECRET)
    fields: dict[str, str | bytes] = {}
    if signer is not None:
        binding = ContributionBinding(
            run_tag=RoundSettings().run_tag,
            flower_run_id=1,
            server_round=server_round,
            node_id=node_id,
            ckks_fingerprint=context_fingerprint(PUBLIC),
            digest=ciphertext_digest(chunks),
        )
        fields = SignedContribution.sign(
            ContributionSigner(KEYS[signer]), chunks, binding
        ).update_fields()
    content = RecordDict(
        {
            ContentKey.CKKS_UPDATE.value: ConfigRecord(
                {CkksField.CHUNKS.value: chunks, CkksField.LENGTH.value: 4, **fields}
            ),
            ContentKey.METRICS.value: MetricRecord({MetricKey.NUM_EXAMPLES.value: 10.0}),
        }
    )
    return train_reply(content, node)


def _strategy(min_replies: int) -> CkksFedAvg:
    return CkksFedAvg(
        FedAvg(min_train_nodes=1, min_available_nodes=1),
        public_context=PUBLIC,
        min_replies=min_replies,
        authorized_nodes=AUTHORIZED,
    )


def test_fewer_replies_than_noise_shares_leave_the_model_unchanged() -> None:
    # Prepare: three nodes are asked (three noise shares promised); two answer with real,
    # signed ciphertexts.
    strategy = _strategy(3)
    asked = start_round(strategy, 1, REFERENCE, [1, 2, 3])
    replies = [_reply(1, signer="n1", node_id="n1"), _reply(2, signer="n2", node_id="n2")]

    # Execute: the grid delivers nothing, so asking a node to decrypt would fail the test.
    arrays, metrics = strategy.aggregate_train(1, replies)

    # Assert: both admitted (no refusal), yet nothing decrypted.
    assert len(asked) == 3
    assert (arrays, metrics) == (None, None)
    assert strategy.refusals == []


@pytest.mark.parametrize(
    ("third", "reason"),
    [
        (dict(signer=None, node_id="n3"), "not signed by an authorised node key"),
        (dict(signer="rogue", node_id="rogue"), "not signed by an authorised node key"),
        (dict(signer="rogue", node_id="n3"), "not signed by an authorised node key"),
        (dict(signer="n3", node_id="n3", server_round=2), "not signed by an authorised node key"),
        (dict(signer="n2", node_id="n2"), "node n2 already counted"),
    ],
    ids=["unsigned", "unknown-key", "impersonation", "other-round", "second-reply"],
)
def test_a_reply_without_an_authorised_signature_is_dropped_and_recorded(
    third: dict[str, object], reason: str
) -> None:
    # Prepare: t = 3; two authorised replies and a third that must not count.
    strategy = _strategy(3)
    start_round(strategy, 1, REFERENCE, [1, 2, 3])
    replies = [
        _reply(1, signer="n1", node_id="n1"),
        _reply(2, signer="n2", node_id="n2"),
        _reply(3, **third),  # type: ignore[arg-type]
    ]

    # Execute: with the third counted the sum would go to decryption (and fail the grid).
    arrays, metrics = strategy.aggregate_train(1, replies)

    # Assert: dropped, recorded with its Flower node id, nothing decrypted.
    assert (arrays, metrics) == (None, None)
    assert strategy.refusals == [{"round": 1, "node": "3", "reason": reason}]
