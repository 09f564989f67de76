"""Endorsing the set of contributions a round sums: no two overlapping sums decrypt.

One node decrypting at most one sum per round does not stop a deviating coordinator from
asking *different* nodes for *different* sums of one round: with contributions A, B, C,
D and t = 3, node A decrypting {A, B, C, D} and node B decrypting {B, C, D} hand it A's
update as the difference. So before anything is decrypted, every contributor endorses
the exact set (:func:`contribution_set_digest`: run, round, and each node id with its
ciphertext digest), and a node endorses at most one set per (run, round). The decrypting
node requires every contributor's endorsement of the set it is asked to sum. Two sets
that share a node can then never both be decrypted; disjoint sets each hold at least
``t`` noise shares and reveal nothing about each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flwr.app import ConfigRecord

from crypto.contribution_signature import (
    ContributionSignatureError,
    verify_contribution_signature,
)
from federation.contributions import (
    CONTRIBUTION_DOMAIN,
    ContributionField,
    DecryptionRefusedError,
    DecryptRequest,
    check_contribution_set,
    list_field,
    scalar_field,
)

__all__ = [
    "ENDORSEMENT_DOMAIN",
    "EndorseRequest",
    "EndorsementBinding",
    "check_decrypt_request",
    "check_endorse_request",
    "contribution_set_digest",
    "verify_endorsement",
]

ENDORSEMENT_DOMAIN = CONTRIBUTION_DOMAIN + b"/endorsed-set"
"""Prefix of every endorsement (never valid as a contribution signature, nor the reverse)."""


def contribution_set_digest(
    *, run_tag: str, flower_run_id: int, server_round: int, members: Sequence[tuple[str, bytes]]
) -> bytes:
    """SHA-256 naming one round's set: ``members`` are (node id, ciphertext digest) pairs."""
    body = {
        "flower_run_id": int(flower_run_id),
        "members": sorted([node_id, digest.hex()] for node_id, digest in members),
        "run_tag": run_tag,
        "server_round": int(server_round),
    }
    canonical = json.dumps(body, sort_keys=True).encode("utf-8")
    return hashlib.sha256(ENDORSEMENT_DOMAIN + b"\n" + canonical).digest()


@dataclass(frozen=True, kw_only=True)
class EndorsementBinding:
    """What an endorsement signs: this node accepts ``set_digest`` as the round's sum."""

    node_id: str
    ckks_fingerprint: str
    set_digest: bytes

    def message(self) -> bytes:
        """The canonical bytes that are signed."""
        body = {
            "ckks_fingerprint": self.ckks_fingerprint,
            "node_id": self.node_id,
            "set_digest": self.set_digest.hex(),
        }
        return ENDORSEMENT_DOMAIN + b"\n" + json.dumps(body, sort_keys=True).encode("utf-8")


def verify_endorsement(
    *,
    authorized: Mapping[str, str],
    node_id: str,
    ckks_fingerprint: str,
    set_digest: bytes,
    signature: bytes,
) -> None:
    """Check ``node_id``'s endorsement of ``set_digest`` against its authorised key.

    Raises:
        ContributionSignatureError: Unknown node id or a signature that does not verify.
    """
    binding = EndorsementBinding(
        node_id=node_id, ckks_fingerprint=ckks_fingerprint, set_digest=set_digest
    )
    verify_contribution_signature(authorized.get(node_id, ""), binding.message(), signature)


@dataclass(frozen=True, kw_only=True)
class EndorseRequest:
    """The coordinator's request to endorse a set: each member's id, digest, signature."""

    run_tag: str
    server_round: int
    node_ids: tuple[str, ...]
    digests: tuple[bytes, ...]
    signatures: tuple[bytes, ...]

    def members(self) -> list[tuple[str, bytes]]:
        """(node id, ciphertext digest) of every member of the set."""
        return list(zip(self.node_ids, self.digests, strict=True))

    def to_record(self) -> ConfigRecord:
        """The request as a ConfigRecord (parallel lists)."""
        return ConfigRecord(
            {
                ContributionField.RUN_TAG.value: self.run_tag,
                ContributionField.SERVER_ROUND.value: int(self.server_round),
                ContributionField.NODE_IDS.value: list(self.node_ids),
                "digests": list(self.digests),
                ContributionField.SIGNATURES.value: list(self.signatures),
            }
        )

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> EndorseRequest:
        """Parse :meth:`to_record`'s content.

        Raises:
            DecryptionRefusedError: Any field missing or of the wrong type or size.
        """
        node_ids = list_field(record, ContributionField.NODE_IDS.value, str)
        digests = list_field(record, "digests", bytes)
        signatures = list_field(record, ContributionField.SIGNATURES.value, bytes)
        if not len(node_ids) == len(digests) == len(signatures):
            raise DecryptionRefusedError()
        return cls(
            run_tag=scalar_field(record, ContributionField.RUN_TAG.value, str),
            server_round=scalar_field(record, ContributionField.SERVER_ROUND.value, int),
            node_ids=tuple(node_ids),
            digests=tuple(digests),
            signatures=tuple(signatures),
        )


def check_decrypt_request(
    request: DecryptRequest,
    *,
    authorized: Mapping[str, str],
    flower_run_id: int,
    ckks_fingerprint: str,
    own_node_id: str,
    own_digest: bytes,
    noise_shares: int,
) -> bytes:
    """Check a decrypt request as the decrypting node must before it decrypts anything.

    The contributions pass :func:`~federation.contributions.check_contribution_set`;
    either they are exactly the set announced before training, which every signature
    binds (``request.members``; no endorsements), or every contributor endorsed exactly
    this set.

    Returns:
        The set's digest (:func:`contribution_set_digest`).

    Raises:
        DecryptionRefusedError: For any failure.
    """
    members = [(c.node_id, c.digest) for c in request.contributions]
    check_contribution_set(
        [(c.node_id, c.digest, c.signature) for c in request.contributions],
        authorized=authorized,
        run_tag=request.run_tag,
        flower_run_id=flower_run_id,
        server_round=request.server_round,
        ckks_fingerprint=ckks_fingerprint,
        own_node_id=own_node_id,
        own_digest=own_digest,
        noise_shares=noise_shares,
        members=request.members,
    )
    set_digest = contribution_set_digest(
        run_tag=request.run_tag,
        flower_run_id=flower_run_id,
        server_round=request.server_round,
        members=members,
    )
    if request.members:
        if request.endorsements:
            raise DecryptionRefusedError()
        return set_digest
    if len(request.endorsements) != len(members):
        raise DecryptionRefusedError()
    try:
        for (node_id, _), signature in zip(members, request.endorsements, strict=True):
            verify_endorsement(
                authorized=authorized,
                node_id=node_id,
                ckks_fingerprint=ckks_fingerprint,
                set_digest=set_digest,
                signature=signature,
            )
    except ContributionSignatureError:
        raise DecryptionRefusedError() from None
    return set_digest


def check_endorse_request(
    request: EndorseRequest,
    *,
    authorized: Mapping[str, str],
    flower_run_id: int,
    ckks_fingerprint: str,
    own_node_id: str,
    own_digest: bytes,
    noise_shares: int,
) -> bytes:
    """Check a set a node is asked to endorse; returns its digest.

    Raises:
        DecryptionRefusedError: The set fails
            :func:`~federation.contributions.check_contribution_set`.
    """
    check_contribution_set(
        list(zip(request.node_ids, request.digests, request.signatures, strict=True)),
        authorized=authorized,
        run_tag=request.run_tag,
        flower_run_id=flower_run_id,
        server_round=request.server_round,
        ckks_fingerprint=ckks_fingerprint,
        own_node_id=own_node_id,
        own_digest=own_digest,
        noise_shares=noise_shares,
    )
    return contribution_set_digest(
        run_tag=request.run_tag,
        flower_run_id=flower_run_id,
        server_round=request.server_round,
        members=request.members(),
    )
