"""Threat: a deviating coordinator uses member nodes as a CKKS decryption oracle.

Four members (t = 3 noise shares) train rounds 1 and 2 through the real ClientApp; each
reply carries the node's signed ciphertexts. The test then plays the coordinator, with
the nodes' real ``query`` handler: it asks the members of a set to endorse it, then
node ``a`` to decrypt its sum. The sets a deviating coordinator wants (one node's
ciphertexts, a sum of t - 1, a contribution replayed from another round, a sum without
``a``, a forged or swapped signature, an unknown signer, a signer twice) are refused
with the same opaque error and nothing is decrypted. The honest sum decrypts once,
rounded to the grid above the CKKS error; a second sum of the same round is refused,
and so is a different, overlapping sum asked of another node (their difference would be
one node's update).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Message

from crypto.ckks_aggregation import decrypt_vector, sum_encrypted
from crypto.ckks_decryption_rounding import decryption_grid
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
    train,
)

NAMES = ["a", "b", "c", "d"]

Contributions = dict[tuple[str, int], SignedContribution]


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[Member], Contributions, int]:
    """Every member trained rounds 1 and 2; their signed contributions by (name, round)."""
    root = tmp_path_factory.mktemp("oracle")
    members = provision_members(root, NAMES)
    app = client_app()
    contributions: Contributions = {}
    length = 0
    for server_round in (1, 2):
        for member in members:
            contributions[member.name, server_round], length = contribution_of(
                train(app, member, server_round)
            )
    return members, contributions, length


@pytest.fixture
def nodes(trained: tuple[list[Member], Contributions, int], tmp_path: Path) -> dict[str, Member]:
    """The members with fresh copies of their folders (what each recorded when it trained)."""
    members, _, _ = trained
    fresh = {}
    for member in members:
        folder = tmp_path / member.name
        shutil.copytree(member.folder, folder)
        fresh[member.name] = replace(member, folder=folder)
    return fresh


def _round(
    nodes: dict[str, Member], contributions: list[SignedContribution], length: int, rnd: int = 1
) -> tuple[dict[str, Message], Message]:
    """Endorse ``contributions`` with their members, then ask ``a`` to decrypt the sum."""
    app = client_app()
    endorsements = endorse(app, nodes, contributions, rnd)
    reply = decrypt(
        app, nodes["a"], contributions, length=length, server_round=rnd, endorsements=endorsements
    )
    return endorsements, reply


def _deviations(c: Contributions) -> dict[str, tuple[list[SignedContribution], int]]:
    b1 = c["b", 1]
    return {
        "one-node": ([c["a", 1]], 1),
        "t-1": ([c["a", 1], c["b", 1]], 1),
        "replayed-round": ([c["a", 2], c["b", 2], c["c", 1]], 2),
        "forged-signature": (
            [c["a", 1], c["b", 1], SignedContribution("c", c["c", 1].chunks, b1.signature)],
            1,
        ),
        "swapped-ciphertexts": (
            [c["a", 1], SignedContribution("b", c["d", 1].chunks, b1.signature), c["c", 1]],
            1,
        ),
        "unknown-signer": ([c["a", 1], c["b", 1], replace(c["c", 1], node_id="mallory")], 1),
        "signer-twice": ([c["a", 1], c["b", 1], c["b", 1]], 1),
    }


@pytest.mark.parametrize(
    "case",
    [
        "one-node",
        "t-1",
        "replayed-round",
        "forged-signature",
        "swapped-ciphertexts",
        "unknown-signer",
        "signer-twice",
    ],
)
def test_a_deviating_set_is_neither_endorsed_nor_decrypted(
    trained: tuple[list[Member], Contributions, int], nodes: dict[str, Member], case: str
) -> None:
    # Prepare
    _, contributions, length = trained
    deviating, rnd = _deviations(contributions)[case]

    # Execute: the deviating set, then the honest one of the same round.
    endorsements, refused = _round(nodes, deviating, length, rnd)
    _, honest = _round(nodes, [contributions[n, rnd] for n in NAMES], length, rnd)

    # Assert: no member endorsed it, ``a`` refused it opaquely, and the refusals used up
    # nothing: the honest sum of the round still decrypts.
    assert endorsements
    for reply in endorsements.values():
        assert_refused(reply)
    assert_refused(refused)
    assert not honest.has_error()


def test_a_sum_without_the_decrypting_node_is_refused(
    trained: tuple[list[Member], Contributions, int], nodes: dict[str, Member]
) -> None:
    # Prepare: b, c and d (t = 3) endorse their own sum: a legitimate sum, not a's.
    _, contributions, length = trained
    others = [contributions[n, 1] for n in ("b", "c", "d")]

    # Execute
    endorsements, reply = _round(nodes, others, length)

    # Assert
    assert all(not r.has_error() for r in endorsements.values())
    assert_refused(reply)


def test_the_honest_sum_decrypts_once_rounded_and_no_overlapping_sum_after_it(
    trained: tuple[list[Member], Contributions, int], nodes: dict[str, Member]
) -> None:
    # Prepare: what a's own secret context decrypts without rounding.
    _, contributions, length = trained
    honest = [contributions[n, 1] for n in NAMES]
    kit = load_node_kit(nodes["a"].kit)
    secret = kit.ckks_secret_context
    raw = decrypt_vector(sum_encrypted([list(c.chunks) for c in honest], secret), secret, length)
    grid = decryption_grid(kit.ckks_parameters.global_scale_bits)
    app = client_app()

    # Execute: the honest round; then a second sum from a; then the overlapping sum
    # {b, c, d} asked of b (with b, c, d asked to endorse it).
    endorsed, reply = _round(nodes, honest, length)
    again = decrypt(
        app, nodes["a"], honest[:3], length=length, server_round=1, endorsements=endorsed
    )
    overlap = honest[1:]
    overlap_endorsed = endorse(app, nodes, overlap, 1)
    by_b = decrypt(app, nodes["b"], overlap, length=length, server_round=1, endorsements=endorsed)

    # Assert: on the grid, within half a step of the raw decryption, which never left.
    assert not reply.has_error()
    released = reply.content.array_records[ContentKey.ARRAYS.value][CkksField.SUM.value].numpy()
    assert released.shape == (length,)
    steps = released / grid
    np.testing.assert_array_equal(steps, np.round(steps))
    assert np.max(np.abs(released - raw)) <= grid / 2
    assert np.any(released != raw)
    # Nothing else of round 1 decrypts: not a second sum, not an overlapping one.
    assert_refused(again)
    for refusal in overlap_endorsed.values():
        assert_refused(refusal)
    assert_refused(by_b)
