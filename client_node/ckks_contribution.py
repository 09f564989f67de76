"""The node's signed CKKS contribution, and the only decryption it will do: a verified sum.

:func:`sign_and_record` runs inside ``ckks_update_mod`` after the node encrypted its
update: it signs the digest of its chunks bound to this run and round with the kit's
node key (:mod:`federation.contributions`) and records (run, round, digest, ``t``) in
the node's state folder (:mod:`federation.contribution_log`).

:func:`check_announced_set` runs before the node trains: when the train message
announces the set of node ids the round's sum will hold (``contribution-set``), the
node takes part only if it is in the set, every id is on its own kit's authorised node
list and there are at least ``max(t, 2)``; its signature then binds that exact set, and
the sum needs no endorsement (:mod:`federation.contributions`).

:func:`endorse_contribution_set` answers the coordinator's first ``query`` (rounds
without an announced set): the node
signs the round's set of contributions if every contribution is signed by a key on its
*own* kit's authorised node list for this run and round, there are at least
``max(t, 2)`` distinct signers (``t``: the noise shares it trained with), and its own
contribution is among them with the digest it recorded; it endorses one set per round
(:mod:`federation.contribution_endorsement`: so no two overlapping sums of a round can
be decrypted, by this node or any other).

:func:`decrypt_verified_sum` answers the last: the node decrypts only a set that
passes the same checks and that is either the announced set its own signature binds or
one every contributor (itself included) endorsed, and only once per round. It sums the
ciphertexts itself, decrypts, and rounds the result
(:mod:`crypto.ckks_decryption_rounding`) before it leaves the node. Any other request
gets one opaque refusal and nothing is decrypted.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, RecordDict

from client_node.node_data import STATE_DIR
from crypto.ckks_aggregation import CkksError, decrypt_sum
from crypto.ckks_decryption_rounding import round_decryption
from crypto.contribution_signature import ContributionSigner
from crypto.secret_files import read_secret_file
from embedding_core.errors import FedembedError
from federation.contribution_endorsement import (
    EndorsementBinding,
    EndorseRequest,
    check_decrypt_request,
    check_endorse_request,
    contribution_set_digest,
)
from federation.contribution_log import (
    CONTRIBUTION_LOG_FILE,
    ContributionLog,
    ContributionRecord,
)
from federation.contributions import (
    ContributionBinding,
    ContributionField,
    DecryptionRefusedError,
    DecryptRequest,
    SignedContribution,
    ciphertext_digest,
    min_signers,
)
from federation.records import CkksField
from federation.round_settings import RoundSettings, server_round_of
from federation.wire import CONTRIBUTION_SET_KEY, ContentKey, NodeConfigKey
from kits.layout import NodeKit
from kits.loader import load_node_kit

__all__ = [
    "ERROR_CODE_DECRYPTION_REFUSED",
    "check_announced_set",
    "decrypt_verified_sum",
    "endorse_contribution_set",
    "sign_and_record",
]

logger = logging.getLogger(__name__)

ERROR_CODE_DECRYPTION_REFUSED = 4002


@functools.lru_cache(maxsize=4)
def _kit(kit_dir: str) -> NodeKit:
    return load_node_kit(kit_dir)


@functools.lru_cache(maxsize=4)
def _signer(kit_dir: str) -> ContributionSigner:
    """The kit's node key, read under the secret-file rule (checked again at this read)."""
    path = _kit(kit_dir).auth_key_path
    try:
        private = read_secret_file(path, what="node auth key")
    except OSError as exc:  # a SecretFileError (mode, owner) passes through as it is
        raise FedembedError(
            f"the node auth key {path} cannot be read ({exc.strerror})",
            expected="the kit's auth.key, readable by the user running the node",
            fix="check the kit folder passed with kit-dir",
        ) from None
    return ContributionSigner.from_openssh(private)


def _fingerprint(kit: NodeKit) -> str:
    if kit.ckks_fingerprint is None:
        raise FedembedError(
            f"the node kit {kit.path} names no CKKS key pair",
            expected="a kit that went through the CKKS key ceremony",
            fix="install the consortium's CKKS secret context (docs/key_custody.md)",
        )
    return kit.ckks_fingerprint


def _log(context: Context) -> ContributionLog:
    data_dir = context.node_config.get(NodeConfigKey.DATA_DIR.value)
    if not data_dir:
        raise FedembedError(
            "the node has no data folder for its contribution log",
            expected="--node-config \"data-dir='/path/to/node'\"",
            fix="restart the SuperNode with data-dir in --node-config",
        )
    return ContributionLog(Path(str(data_dir)) / STATE_DIR / CONTRIBUTION_LOG_FILE)


def check_announced_set(msg: Message, *, kit_dir: str) -> tuple[str, ...]:
    """The set of node ids train message ``msg`` announces (sorted), if the node may join it.

    Empty when the message announces none (the set is endorsed after training). Call it
    before training: a refusal then charges nothing.

    Raises:
        FedembedError: The announced set is malformed, lacks this node, names a node its
            own kit does not authorise, or has fewer than ``max(t, 2)`` members.
    """
    config = dict(msg.content.config_records[ContentKey.CONFIG.value])
    value = config.get(CONTRIBUTION_SET_KEY)
    if value is None:
        return ()
    kit = _kit(kit_dir)
    settings = RoundSettings.from_record(config)
    needed = min_signers(settings.dp_noise_shares)
    expected = (
        f"a list of at least {needed} distinct node ids from this node's authorised list, "
        f"including its own ({kit.node_id})"
    )
    fix = "run the coordinator's ServerApp unchanged; it announces the nodes it asked"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FedembedError(
            f"node {kit.node_id} refuses the round: {CONTRIBUTION_SET_KEY} is not a list "
            "of node ids",
            expected=expected,
            fix=fix,
        )
    members = tuple(sorted(str(v) for v in value))
    unknown = [m for m in members if m not in kit.authorized_nodes]
    if (
        len(set(members)) != len(members)
        or kit.node_id not in members
        or unknown
        or len(members) < needed
    ):
        raise FedembedError(
            f"node {kit.node_id} refuses the round: the announced {CONTRIBUTION_SET_KEY} "
            f"has {len(members)} ids ({len(unknown)} not authorised by its kit)",
            expected=expected,
            fix=fix,
        )
    return members


def sign_and_record(
    msg: Message, context: Context, *, kit_dir: str, chunks: list[bytes], length: int
) -> dict[str, str | bytes | list[str]]:
    """Sign the node's ``chunks`` for the round of train message ``msg`` and record them.

    The signature binds the announced set, if the message names one
    (:func:`check_announced_set`, checked again here).

    Returns:
        The fields to add to the CKKS update record (node id, signature, announced set).
    """
    config = dict(msg.content.config_records[ContentKey.CONFIG.value])
    settings = RoundSettings.from_record(config)
    server_round = server_round_of(config, settings)
    kit = _kit(kit_dir)
    members = check_announced_set(msg, kit_dir=kit_dir)
    digest = ciphertext_digest(chunks)
    binding = ContributionBinding(
        run_tag=settings.run_tag,
        flower_run_id=int(msg.metadata.run_id),
        server_round=server_round,
        node_id=kit.node_id,
        ckks_fingerprint=_fingerprint(kit),
        digest=digest,
        members=members,
    )
    signed = SignedContribution.sign(_signer(kit_dir), chunks, binding)
    _log(context).record(
        ContributionRecord(
            run_tag=settings.run_tag,
            server_round=server_round,
            flower_run_id=int(msg.metadata.run_id),
            digest=digest.hex(),
            noise_shares=settings.dp_noise_shares,
            length=int(length),
            members=members,
        )
    )
    logger.info("ckks: signed contribution round=%d node=%s", server_round, kit.node_id)
    return signed.update_fields()


def _refusal(msg: Message, exc: Exception) -> Message:
    # The coordinator learns only "refused"; the node's own log names the class.
    logger.warning("ckks: %s request refused (%s)", msg.metadata.message_type, type(exc).__name__)
    return Message(
        Error(code=ERROR_CODE_DECRYPTION_REFUSED, reason=str(DecryptionRefusedError())),
        reply_to=msg,
    )


def endorse_contribution_set(msg: Message, context: Context) -> Message:
    """Endorse the round's contribution set: the node's signature, or one opaque refusal.

    The node endorses a set only if it would decrypt it (every signature, ``t`` signers,
    its own contribution), and only one set per (run, round).
    """
    try:
        record = msg.content.config_records.get(ContentKey.CKKS_ENDORSE.value)
        if record is None:
            raise DecryptionRefusedError()
        request = EndorseRequest.from_record(dict(record))
        kit_dir = str(context.node_config.get(NodeConfigKey.KIT_DIR.value) or "")
        kit = _kit(kit_dir)
        fingerprint = _fingerprint(kit)
        run_id = int(msg.metadata.run_id)
        set_digest = contribution_set_digest(
            run_tag=request.run_tag,
            flower_run_id=run_id,
            server_round=request.server_round,
            members=request.members(),
        )

        def check(entry: ContributionRecord) -> None:
            if entry.flower_run_id != run_id:
                raise DecryptionRefusedError()
            check_endorse_request(
                request,
                authorized=kit.authorized_nodes,
                flower_run_id=run_id,
                ckks_fingerprint=fingerprint,
                own_node_id=kit.node_id,
                own_digest=bytes.fromhex(entry.digest),
                noise_shares=entry.noise_shares,
            )

        _log(context).claim_endorsement(
            request.run_tag, request.server_round, set_digest.hex(), check
        )
        binding = EndorsementBinding(
            node_id=kit.node_id, ckks_fingerprint=fingerprint, set_digest=set_digest
        )
        signature = _signer(kit_dir).sign(binding.message())
    except (FedembedError, ValueError, TypeError, OSError) as exc:
        return _refusal(msg, exc)
    logger.info("ckks: endorsed a contribution set round=%d", request.server_round)
    return Message(
        RecordDict(
            {
                ContentKey.CKKS_ENDORSE.value: ConfigRecord(
                    {ContributionField.ENDORSEMENT.value: signature}
                )
            }
        ),
        reply_to=msg,
    )


def decrypt_verified_sum(
    msg: Message, context: Context, *, kit_dir: str, secret_context: bytes
) -> Message:
    """Answer a decrypt request: the rounded sum, or one opaque refusal."""
    try:
        record = msg.content.config_records.get(ContentKey.CKKS_DECRYPT.value)
        if record is None:
            raise DecryptionRefusedError()
        request = DecryptRequest.from_record(dict(record))
        kit = _kit(kit_dir)
        fingerprint = _fingerprint(kit)
        run_id = int(msg.metadata.run_id)

        def check(entry: ContributionRecord) -> None:
            if entry.flower_run_id != run_id or entry.length != request.length:
                raise DecryptionRefusedError()
            set_digest = check_decrypt_request(
                request,
                authorized=kit.authorized_nodes,
                flower_run_id=run_id,
                ckks_fingerprint=fingerprint,
                own_node_id=kit.node_id,
                own_digest=bytes.fromhex(entry.digest),
                noise_shares=entry.noise_shares,
            )
            # The announced set the node's own signature binds, or the set it endorsed.
            if request.members:
                if request.members != entry.members or entry.endorsed:
                    raise DecryptionRefusedError()
            elif entry.members or entry.endorsed != set_digest.hex():
                raise DecryptionRefusedError()

        entry = _log(context).claim_decryption(request.run_tag, request.server_round, check)
        total = decrypt_sum(
            [list(c.chunks) for c in request.contributions], secret_context, entry.length
        )
        released = round_decryption(total, scale_bits=kit.ckks_parameters.global_scale_bits)
    except (FedembedError, CkksError, ValueError, TypeError, OSError) as exc:
        return _refusal(msg, exc)
    logger.info(
        "ckks: decrypted a verified sum round=%d signers=%d",
        request.server_round,
        len(request.contributions),
    )
    return Message(
        RecordDict(
            {
                ContentKey.ARRAYS.value: ArrayRecord(
                    {CkksField.SUM.value: Array(np.asarray(released))}
                )
            }
        ),
        reply_to=msg,
    )
