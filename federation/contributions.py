"""Signed CKKS contributions: what a node signs, and what a decrypting node checks.

Each node signs the SHA-256 digest of its own ciphertext chunks, bound to the run tag,
Flower's run id, the server round, its kit node id and the consortium's CKKS key
fingerprint (:class:`ContributionBinding`), with its kit's node key
(:mod:`crypto.contribution_signature`). The coordinator admits only contributions
signed by an authorised node key (:func:`verify_contribution`), once per node id. It
then asks one node to decrypt the sum and sends every contribution along
(:class:`DecryptRequest`); that node checks the set against its own kit and its own
record (:func:`check_contribution_set`) and recomputes the sum itself, so a deviating
coordinator cannot have one node's update, a sum of fewer than ``t`` noise shares, a
sum without the decrypting node, or a contribution from another round decrypted.

No two overlapping sums of one round may decrypt (their difference would be one node's
update). Either the set was announced before training, and every node signed its
contribution bound to that exact set of node ids (:attr:`ContributionBinding.members`):
a node signs one contribution a round, so two sets that share a node are the same set;
or every contributor endorses the set after the fact
(:mod:`federation.contribution_endorsement`), one set per round. The announced set
saves the endorsement's message exchange; a round whose announced set does not all
answer is not decrypted.

Every refusal on the decrypting side is one opaque :class:`DecryptionRefusedError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from flwr.app import ConfigRecord

from crypto.contribution_signature import (
    ContributionSignatureError,
    ContributionSigner,
    verify_contribution_signature,
)
from embedding_core.errors import FedembedError

__all__ = [
    "CONTRIBUTION_DOMAIN",
    "ContributionBinding",
    "ContributionField",
    "DecryptRequest",
    "DecryptionRefusedError",
    "SignedContribution",
    "check_contribution_set",
    "ciphertext_digest",
    "list_field",
    "min_signers",
    "scalar_field",
    "verify_contribution",
]

_T = TypeVar("_T")

CONTRIBUTION_DOMAIN = b"fedembed/ckks-contribution/v1"
"""Prefix of every signed message and digest (no signature is valid in another protocol)."""


class DecryptionRefusedError(FedembedError):
    """A decrypt request was refused (one message for every cause, by design)."""

    def __init__(self) -> None:
        super().__init__(
            "the node refuses to decrypt this request",
            expected="the sum of at least t signed contributions of this run and round, "
            "including the node's own, asked once",
            fix="run the coordinator's ServerApp unchanged",
        )


class ContributionField(StrEnum):
    """Fields that carry signed contributions on the wire."""

    NODE_ID = "node-id"
    """The kit node id that signed (in the CKKS update record)."""
    SIGNATURE = "signature"
    """The signature over the contribution's binding (in the CKKS update record)."""
    RUN_TAG = "run-tag"
    SERVER_ROUND = "server-round"
    NODE_IDS = "node-ids"
    SIGNATURES = "signatures"
    CHUNK_COUNTS = "chunk-counts"
    ENDORSEMENTS = "endorsements"
    ENDORSEMENT = "endorsement"
    """A node's endorsement signature (in its reply to an endorse request)."""
    MEMBERS = "members"
    """The announced set a contribution is bound to (update record, decrypt request)."""


def ciphertext_digest(chunks: Sequence[bytes]) -> bytes:
    """SHA-256 over the domain, the chunk count and each length-prefixed chunk."""
    digest = hashlib.sha256(CONTRIBUTION_DOMAIN)
    digest.update(len(chunks).to_bytes(8, "big"))
    for chunk in chunks:
        digest.update(len(chunk).to_bytes(8, "big"))
        digest.update(chunk)
    return digest.digest()


def min_signers(noise_shares: int) -> int:
    """Fewest distinct signers a decryptable sum needs: ``t``, and at least 2."""
    return max(int(noise_shares), 2)


@dataclass(frozen=True, kw_only=True)
class ContributionBinding:
    """What a node's signature covers: its ciphertexts in one run and round."""

    run_tag: str
    flower_run_id: int
    server_round: int
    node_id: str
    ckks_fingerprint: str
    digest: bytes
    members: tuple[str, ...] = ()
    """The announced set of node ids the sum will hold (empty: the set is endorsed later)."""

    def message(self) -> bytes:
        """The canonical bytes that are signed (``members`` only when a set was announced)."""
        body: dict[str, object] = {
            "ckks_fingerprint": self.ckks_fingerprint,
            "digest": self.digest.hex(),
            "flower_run_id": int(self.flower_run_id),
            "node_id": self.node_id,
            "run_tag": self.run_tag,
            "server_round": int(self.server_round),
        }
        if self.members:
            body["members"] = sorted(self.members)
        return CONTRIBUTION_DOMAIN + b"\n" + json.dumps(body, sort_keys=True).encode("utf-8")


@dataclass(frozen=True)
class SignedContribution:
    """One node's ciphertext chunks with its signature."""

    node_id: str
    chunks: tuple[bytes, ...]
    signature: bytes
    members: tuple[str, ...] = ()
    """The announced set the signature binds (sorted; empty when none was announced)."""

    @property
    def digest(self) -> bytes:
        """:func:`ciphertext_digest` of the chunks."""
        return ciphertext_digest(self.chunks)

    @classmethod
    def sign(
        cls, signer: ContributionSigner, chunks: Sequence[bytes], binding: ContributionBinding
    ) -> SignedContribution:
        """Sign ``chunks`` under ``binding`` (whose digest must be theirs)."""
        if binding.digest != ciphertext_digest(chunks):
            raise ValueError("the binding's digest is not the digest of the chunks")
        return cls(
            binding.node_id,
            tuple(chunks),
            signer.sign(binding.message()),
            tuple(sorted(binding.members)),
        )

    def update_fields(self) -> dict[str, str | bytes | list[str]]:
        """The fields to add to the node's CKKS update record."""
        return {
            ContributionField.NODE_ID.value: self.node_id,
            ContributionField.SIGNATURE.value: self.signature,
            ContributionField.MEMBERS.value: list(self.members),
        }

    @classmethod
    def from_update(
        cls, record: Mapping[str, object], chunks: Sequence[bytes]
    ) -> SignedContribution:
        """Read the node id and signature next to ``chunks`` in a CKKS update record.

        Raises:
            ContributionSignatureError: The record carries no node id or signature.
        """
        node_id = record.get(ContributionField.NODE_ID.value)
        signature = record.get(ContributionField.SIGNATURE.value)
        members = record.get(ContributionField.MEMBERS.value, [])
        if (
            not isinstance(node_id, str)
            or not isinstance(signature, bytes)
            or not isinstance(members, list)
            or not all(isinstance(m, str) for m in members)
        ):
            raise ContributionSignatureError()
        return cls(node_id, tuple(chunks), signature, tuple(sorted(members)))


def verify_contribution(
    contribution: SignedContribution,
    *,
    authorized: Mapping[str, str],
    run_tag: str,
    flower_run_id: int,
    server_round: int,
    ckks_fingerprint: str,
) -> None:
    """Check the signature against the authorised key of the contribution's node id.

    Raises:
        ContributionSignatureError: Unknown node id or a signature that does not verify.
    """
    key = authorized.get(contribution.node_id)
    if key is None:
        raise ContributionSignatureError()
    binding = ContributionBinding(
        run_tag=run_tag,
        flower_run_id=flower_run_id,
        server_round=server_round,
        node_id=contribution.node_id,
        ckks_fingerprint=ckks_fingerprint,
        digest=contribution.digest,
        members=contribution.members,
    )
    verify_contribution_signature(key, binding.message(), contribution.signature)


@dataclass(frozen=True, kw_only=True)
class DecryptRequest:
    """The coordinator's request to decrypt the sum of ``contributions``."""

    run_tag: str
    server_round: int
    length: int
    contributions: tuple[SignedContribution, ...]
    endorsements: tuple[bytes, ...] = ()
    """Each contributor's endorsement of the set (``federation.contribution_endorsement``)."""
    members: tuple[str, ...] = ()
    """The set announced before training, which every contribution's signature binds
    (then no endorsements); empty for an endorsed set."""

    def to_record(self) -> ConfigRecord:
        """The request as a ConfigRecord (parallel lists; chunks concatenated in order)."""
        return ConfigRecord(
            {
                ContributionField.RUN_TAG.value: self.run_tag,
                ContributionField.SERVER_ROUND.value: int(self.server_round),
                "length": int(self.length),
                ContributionField.NODE_IDS.value: [c.node_id for c in self.contributions],
                ContributionField.SIGNATURES.value: [c.signature for c in self.contributions],
                ContributionField.CHUNK_COUNTS.value: [len(c.chunks) for c in self.contributions],
                "chunks": [chunk for c in self.contributions for chunk in c.chunks],
                ContributionField.ENDORSEMENTS.value: list(self.endorsements),
                ContributionField.MEMBERS.value: list(self.members),
            }
        )

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> DecryptRequest:
        """Parse :meth:`to_record`'s content.

        Raises:
            DecryptionRefusedError: Any field missing or of the wrong type or size.
        """
        run_tag = scalar_field(record, ContributionField.RUN_TAG.value, str)
        server_round = scalar_field(record, ContributionField.SERVER_ROUND.value, int)
        length = scalar_field(record, "length", int)
        node_ids = list_field(record, ContributionField.NODE_IDS.value, str)
        signatures = list_field(record, ContributionField.SIGNATURES.value, bytes)
        counts = list_field(record, ContributionField.CHUNK_COUNTS.value, int)
        chunks = list_field(record, "chunks", bytes)
        endorsements = list_field(record, ContributionField.ENDORSEMENTS.value, bytes)
        # A request without the field (a coordinator before announced sets) names none.
        members = (
            tuple(sorted(list_field(record, ContributionField.MEMBERS.value, str)))
            if ContributionField.MEMBERS.value in record
            else ()
        )
        if sum(counts) != len(chunks) or not len(node_ids) == len(signatures) == len(counts):
            raise DecryptionRefusedError()
        if len(endorsements) != (0 if members else len(node_ids)):
            raise DecryptionRefusedError()
        contributions: list[SignedContribution] = []
        start = 0
        for node_id, signature, count in zip(node_ids, signatures, counts, strict=True):
            if count <= 0:
                raise DecryptionRefusedError()
            contributions.append(
                SignedContribution(
                    node_id, tuple(chunks[start : start + count]), signature, members
                )
            )
            start += count
        return cls(
            run_tag=run_tag,
            server_round=server_round,
            length=length,
            contributions=tuple(contributions),
            endorsements=tuple(endorsements),
            members=members,
        )


def scalar_field(record: Mapping[str, object], key: str, kind: type[_T]) -> _T:
    """``record[key]`` if it is a ``kind`` (not a bool); else refused."""
    value = record.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DecryptionRefusedError()
    return value


def list_field(record: Mapping[str, object], key: str, kind: type[_T]) -> list[_T]:
    """``record[key]`` if it is a list of ``kind`` (no bools); else refused."""
    value = record.get(key)
    if not isinstance(value, list):
        raise DecryptionRefusedError()
    items: list[_T] = []
    for item in value:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise DecryptionRefusedError()
        items.append(item)
    return items


def check_contribution_set(
    contributions: Sequence[tuple[str, bytes, bytes]],
    *,
    authorized: Mapping[str, str],
    run_tag: str,
    flower_run_id: int,
    server_round: int,
    ckks_fingerprint: str,
    own_node_id: str,
    own_digest: bytes,
    noise_shares: int,
    members: Sequence[str] = (),
) -> None:
    """Check a set of (node id, ciphertext digest, signature) as a member node must.

    Every contribution must be signed by the key its node id has in the node's own
    authorised list, for this run and round (and, when a set was announced, bound to
    ``members``, which the node ids must be exactly); node ids are distinct and at least
    :func:`min_signers` (``noise_shares``); the node's own contribution is among them
    with the digest it recorded when it contributed.

    Raises:
        DecryptionRefusedError: For any failure.
    """
    node_ids = [node_id for node_id, _, _ in contributions]
    if len(set(node_ids)) != len(node_ids) or len(node_ids) < min_signers(noise_shares):
        raise DecryptionRefusedError()
    if members and sorted(node_ids) != sorted(members):
        raise DecryptionRefusedError()
    own = [digest for node_id, digest, _ in contributions if node_id == own_node_id]
    if own != [own_digest]:
        raise DecryptionRefusedError()
    try:
        for node_id, digest, signature in contributions:
            binding = ContributionBinding(
                run_tag=run_tag,
                flower_run_id=flower_run_id,
                server_round=server_round,
                node_id=node_id,
                ckks_fingerprint=ckks_fingerprint,
                digest=digest,
                members=tuple(members),
            )
            verify_contribution_signature(authorized.get(node_id, ""), binding.message(), signature)
    except ContributionSignatureError:
        raise DecryptionRefusedError() from None
