"""Threat: a deviating coordinator abuses the set it announces before training.

When a CKKS round's train messages announce the set of node ids its sum will hold, each
node signs its contribution bound to that set and the sum decrypts without an
endorsement exchange. Four members (t = 3 noise shares) train through the real
ClientApp. The coordinator the tests play announces sets a node must not join (without
it, with a node its kit does not authorise, smaller than t, malformed: refused before
training, nothing charged), asks for a subset of the announced sum (under the announced
set, or relabelled as another set, or endorsed after the fact), and announces different
sets to different nodes so that two overlapping sums could decrypt. Every one is refused
with the one opaque error; the honest announced sum decrypts once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from crypto.ckks_aggregation import decrypt_vector, sum_encrypted
from crypto.ckks_decryption_rounding import decryption_grid
from federation.contribution_log import CONTRIBUTION_LOG_FILE
from federation.contributions import SignedContribution
from federation.records import CkksField
from federation.wire import ContentKey
from kits.loader import load_node_kit
from tests.privacy.ckks_nodes import (
    Member,
    assert_refused,
    client_app,
    contribution_of,
    decrypt,
    endorse,
    provision_members,
    send,
    train,
    train_message,
)

NAMES = ["a", "b", "c", "d"]
EVERYONE = tuple(NAMES)


@pytest.fixture
def members(tmp_path: Path) -> dict[str, Member]:
    """Four freshly provisioned members (kits, CKKS ceremony, node folders)."""
    return {m.name: m for m in provision_members(tmp_path, NAMES)}


def _train_all(
    members: dict[str, Member], announced: dict[str, list[str]]
) -> tuple[dict[str, SignedContribution], int]:
    """Round 1 on every member with its announced set; their signed contributions."""
    app = client_app()
    contributions: dict[str, SignedContribution] = {}
    length = 0
    for name, member in members.items():
        contributions[name], length = contribution_of(
            train(app, member, 1, announced=announced[name])
        )
    return contributions, length


@pytest.mark.parametrize(
    ("case", "announced"),
    [
        ("without-the-node", ["b", "c", "d"]),
        ("unauthorised-node", ["a", "b", "mallory"]),
        ("fewer-than-t", ["a", "b"]),
        ("a-node-twice", ["a", "b", "b"]),
        ("not-a-list", "a,b,c,d"),
    ],
)
def test_a_node_refuses_an_announced_set_it_cannot_join_before_it_trains(
    members: dict[str, Member], case: str, announced: list[str] | str
) -> None:
    # Prepare
    member = members["a"]

    # Execute
    reply = send(client_app(), member, "train", train_message(1, announced))  # type: ignore[arg-type]

    # Assert: refused with a reason, nothing charged, nothing signed or recorded.
    assert reply.has_error(), case
    assert "contribution-set" in reply.error.reason
    assert not (member.folder / STATE_DIR / LEDGER_FILE).exists()
    assert not (member.folder / STATE_DIR / CONTRIBUTION_LOG_FILE).exists()


def test_the_announced_sum_decrypts_once_without_endorsements(
    members: dict[str, Member],
) -> None:
    # Prepare: every member trains round 1 under the same announced set.
    contributions, length = _train_all(members, {n: list(EVERYONE) for n in NAMES})
    honest = [contributions[n] for n in NAMES]
    kit = load_node_kit(members["a"].kit)
    secret = kit.ckks_secret_context
    raw = decrypt_vector(sum_encrypted([list(c.chunks) for c in honest], secret), secret, length)
    app = client_app()

    # Execute: the sum, then the same request again.
    reply, again = (
        decrypt(
            app,
            members["a"],
            honest,
            length=length,
            server_round=1,
            endorsements={},
            announced=EVERYONE,
        )
        for _ in range(2)
    )

    # Assert: every contribution binds the set; the sum is the rounded raw sum, once.
    assert all(c.members == EVERYONE for c in honest)
    assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
    released = reply.content.array_records[ContentKey.ARRAYS.value][CkksField.SUM.value].numpy()
    grid = decryption_grid(kit.ckks_parameters.global_scale_bits)
    assert np.max(np.abs(released - raw)) <= grid / 2
    assert_refused(again)


def test_no_part_of_an_announced_sum_decrypts(members: dict[str, Member]) -> None:
    # Prepare
    contributions, length = _train_all(members, {n: list(EVERYONE) for n in NAMES})
    subset = [contributions[n] for n in ("b", "c", "d")]
    app = client_app()

    # Execute: {b, c, d} under the announced set, relabelled as its own announced set,
    # and endorsed after the fact (then asked with the endorsements); each of b, c, d
    # is asked, as any of them could be the decrypting node.
    under_set, relabelled = (
        [
            decrypt(
                app,
                members[n],
                subset,
                length=length,
                server_round=1,
                endorsements={},
                announced=label,
            )
            for n in ("b", "c", "d")
        ]
        for label in (EVERYONE, ("b", "c", "d"))
    )
    endorsed = endorse(app, members, subset, 1)
    after_the_fact = [
        decrypt(app, members[n], subset, length=length, server_round=1, endorsements=endorsed)
        for n in ("b", "c", "d")
    ]
    honest = decrypt(
        app,
        members["b"],
        [contributions[n] for n in NAMES],
        length=length,
        server_round=1,
        endorsements={},
        announced=EVERYONE,
    )

    # Assert: all refused, opaquely; the refusals used up nothing.
    for reply in [*under_set, *relabelled, *endorsed.values(), *after_the_fact]:
        assert_refused(reply)
    assert not honest.has_error()


def test_sets_announced_differently_to_different_nodes_never_decrypt(
    members: dict[str, Member],
) -> None:
    # Prepare: a and b are told the set is {a, b, c}; c and d that it is {a, b, c, d}.
    # Were both sums decrypted, their difference would be d's update.
    small = ["a", "b", "c"]
    contributions, length = _train_all(
        members, {"a": small, "b": small, "c": list(EVERYONE), "d": list(EVERYONE)}
    )
    app = client_app()

    # Execute: every node is asked for each sum, under each set.
    replies = [
        decrypt(
            app,
            members[asked],
            [contributions[n] for n in names],
            length=length,
            server_round=1,
            endorsements={},
            announced=tuple(names),
        )
        for names in (small, list(EVERYONE))
        for asked in names
    ]

    # Assert: no sum decrypts: each holds a contribution bound to the other set.
    for reply in replies:
        assert_refused(reply)
