"""Enrol and revoke members of a provisioned consortium without regenerating anything else.

:func:`enrol_member` writes ``nodes/<id>/`` for a new member into the folder
``fedembed coordinator provision --out`` wrote: the consortium CA certificate, the
consortium's DCPE keyring (as every node kit holds it), the member's own ``auth.pub``
(never ``auth.key``: the member made its key pair with ``fedembed node keygen`` and
installs the private half itself, docs/key_custody.md), the authorised node list with the
new member on it, and ``kit.json`` as :func:`kits.loader.load_node_kit` checks it. It adds
the key to the coordinator kit's ``authorized_nodes.json`` and re-writes the coordinator
kit's ``kit.json`` so that :func:`kits.loader.load_coordinator_kit` still verifies. The
CA, the TLS certificates, the gateway kit, the other node kits and the CKKS keys are left
byte for byte as they were: the new member receives the CKKS secret context from the
key-holding member (:func:`kits.ckks_ceremony.ckks_seal_for`).

:func:`revoke_member` removes a member's key from the coordinator kit's authorised list
(the coordinator then hides its SuperNode from every run and refuses its replies) and
keeps the key in ``admin/revoked_nodes.json``, so the same key is not enrolled again
unless asked for explicitly (``reenrol=True``).

A member checks signed CKKS contributions against its own kit's authorised list
(:mod:`federation.contributions`), not the coordinator's: until it takes the new list
(:mod:`kits.member_list`, its SHA-256 pinned out of band, as at provisioning), it
refuses a contribution set that holds a member enrolled after it, and it still knows a
revoked member's key (the coordinator no longer admits that member).

Both steps hold a lock on ``admin/.members.lock``, check the coordinator kit with the
loader before changing it, and restore it if the result does not load.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from crypto.secret_files import SecretFileError, read_secret_file
from embedding_core.atomic_file import atomic_write_bytes
from kits.layout import (
    AUTH_PUB,
    AUTHORIZED_NODES,
    CA_CERT,
    DCPE_KEY_SCOPE,
    DCPE_KEYRING,
    KIT_FORMAT,
    MANIFEST,
    NODE_FILES,
    ProvisioningError,
)
from kits.loader import load_coordinator_kit
from kits.node_keys import auth_key_fingerprint, validate_member_keys
from kits.provisioning import (
    authorized_nodes_bytes,
    make_kit_dir,
    manifest_bytes,
    validate_node_ids,
    write_kit_file,
    write_manifest,
)

__all__ = [
    "REVOKED_NODES",
    "EnrolmentConflictError",
    "MemberNotFoundError",
    "RevokedMember",
    "enrol_member",
    "revoke_member",
    "revoked_members",
]

logger = logging.getLogger(__name__)

REVOKED_NODES: Final = "revoked_nodes.json"
_REVOKED_FORMAT: Final = "fedembed-revoked-nodes/1"
_LOCK: Final = ".members.lock"


class EnrolmentConflictError(ProvisioningError):
    """The name is taken, or the key is already authorised or was revoked."""


class MemberNotFoundError(ProvisioningError):
    """No authorised member has this name."""


@dataclass(frozen=True)
class RevokedMember:
    """One entry of ``admin/revoked_nodes.json``.

    Attributes:
        node_id: The member's kit name.
        auth_pub: Its OpenSSH public key (public; kept so it is not enrolled again).
        fingerprint: ``SHA256:...`` of the key, as ``fedembed node keygen`` printed it.
        revoked_at: When it was revoked (UTC, ISO 8601).
    """

    node_id: str
    auth_pub: str
    fingerprint: str
    revoked_at: str

    def as_dict(self) -> dict[str, str]:
        """The entry as JSON."""
        return {
            "node_id": self.node_id,
            "auth_pub": self.auth_pub,
            "fingerprint": self.fingerprint,
            "revoked_at": self.revoked_at,
        }


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _normal_key(text: str) -> str | None:
    """The OpenSSH line of a public key in one spelling, to compare keys; None if unreadable."""
    try:
        key = serialization.load_ssh_public_key(text.strip().encode("ascii"))
    except (ValueError, UnicodeError, UnsupportedAlgorithm):
        return None
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")


def _kits(kits_dir: Path | str) -> Path:
    kits = Path(kits_dir).expanduser().absolute()
    if not (kits / "admin").is_dir() or not (kits / "coordinator").is_dir():
        raise ProvisioningError(
            f"{kits} is not a provisioned consortium folder",
            expected="the folder `fedembed coordinator provision --out` wrote (admin/, "
            "coordinator/, gateway/, nodes/)",
            fix="point to that folder",
        )
    return kits


@contextlib.contextmanager
def _locked(kits: Path) -> Iterator[None]:
    """Hold the consortium's member lock (one enrolment or revocation at a time)."""
    fd = os.open(kits / "admin" / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def revoked_members(kits_dir: Path | str) -> list[RevokedMember]:
    """Every revoked member's entry, oldest first (an empty list before any revocation)."""
    path = _kits(kits_dir) / "admin" / REVOKED_NODES
    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != _REVOKED_FORMAT:
            raise ValueError(f"format is not {_REVOKED_FORMAT}")
        return [RevokedMember(**entry) for entry in document["revoked"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ProvisioningError(
            f"{path} cannot be read ({err})",
            expected="the revocation record written by `fedembed coordinator revoke`",
            fix=f"restore {path} from a backup",
        ) from None


def _save_revoked(kits: Path, entries: list[RevokedMember]) -> None:
    document = {"format": _REVOKED_FORMAT, "revoked": [e.as_dict() for e in entries]}
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(kits / "admin" / REVOKED_NODES, text.encode("utf-8"), mode=0o644)


def _coordinator_state(kits: Path) -> tuple[dict[str, Any], bytes, bytes]:
    """The verified coordinator kit's manifest and the raw bytes to restore on failure."""
    coordinator = load_coordinator_kit(kits / "coordinator")  # refuses an edited kit
    manifest = coordinator.path / MANIFEST
    raw_manifest = manifest.read_bytes()
    raw_authorized = coordinator.authorized_nodes_path.read_bytes()
    content: dict[str, Any] = json.loads(raw_manifest)
    return content, raw_manifest, raw_authorized


def _write_coordinator(
    kits: Path,
    content: Mapping[str, Any],
    authorized: Mapping[str, str],
    restore: tuple[bytes, bytes],
) -> None:
    """Re-write the coordinator's authorised list and ``kit.json``; restore if it won't load."""
    folder = kits / "coordinator"
    listed = content["files"]
    files = list(listed) if isinstance(listed, dict) else []
    fields = {k: v for k, v in content.items() if k != "files"}
    fields["node_ids"] = sorted(authorized)
    try:
        atomic_write_bytes(
            folder / AUTHORIZED_NODES, authorized_nodes_bytes(authorized), mode=0o644
        )
        atomic_write_bytes(folder / MANIFEST, manifest_bytes(folder, fields, files), mode=0o644)
        load_coordinator_kit(folder)
    except BaseException:
        raw_manifest, raw_authorized = restore
        atomic_write_bytes(folder / AUTHORIZED_NODES, raw_authorized, mode=0o644)
        atomic_write_bytes(folder / MANIFEST, raw_manifest, mode=0o644)
        raise


def _check_new_member(
    kits: Path,
    node_id: str,
    key: str,
    authorized: Mapping[str, str],
    revoked: list[RevokedMember],
    *,
    reenrol: bool,
) -> None:
    revoked_names = {entry.node_id.lower() for entry in revoked}
    taken = {name.lower(): name for name in authorized}
    nodes = kits / "nodes"
    folders = {p.name.lower(): p.name for p in nodes.iterdir()} if nodes.is_dir() else {}
    lowered = node_id.lower()
    if lowered in taken:
        raise EnrolmentConflictError(
            f"the name {node_id!r} is taken by the authorised member {taken[lowered]!r}"
            + (" (case is ignored)" if taken[lowered] != node_id else ""),
            expected="a name no member of this consortium has",
            fix="choose another name for the new member",
        )
    if lowered in folders and not (reenrol and lowered in revoked_names):
        raise EnrolmentConflictError(
            f"the name {node_id!r} is taken: the kit folder {nodes / folders[lowered]} exists"
            + (" (a revoked member's)" if lowered in revoked_names else ""),
            expected="a name no member of this consortium has had",
            fix="choose another name"
            + (", or re-enrol the revoked member explicitly" if lowered in revoked_names else ""),
        )
    for name, existing in authorized.items():
        if _normal_key(existing) == key:
            raise EnrolmentConflictError(
                f"this public key is already authorised, as member {name!r}",
                expected="a key pair made for the new member alone",
                fix="have the new member run `fedembed node keygen` and send its own auth.pub",
            )
    if not reenrol:
        for entry in revoked:
            if _normal_key(entry.auth_pub) == key:
                raise EnrolmentConflictError(
                    f"this public key was revoked (member {entry.node_id!r}, {entry.revoked_at})",
                    expected="a key that was never revoked",
                    fix="have the member make a new key pair with `fedembed node keygen`, "
                    "or re-enrol the revoked key explicitly",
                )


def _write_node_kit(
    kits: Path, node_id: str, key: str, authorized: Mapping[str, str], common: Mapping[str, Any]
) -> Path:
    """Stage ``nodes/<id>/`` and move it into place (replacing a revoked member's folder)."""
    nodes = kits / "nodes"
    nodes.mkdir(mode=0o700, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".enrol-{node_id}-", dir=nodes))
    try:
        node = make_kit_dir(staging / node_id)
        write_kit_file(node / CA_CERT, (kits / "coordinator" / CA_CERT).read_bytes())
        write_kit_file(node / AUTH_PUB, key.encode("ascii") + b"\n")
        try:
            keyring = read_secret_file(kits / "gateway" / DCPE_KEYRING, what="DCPE keyring")
        except SecretFileError as err:
            raise ProvisioningError(err.problem, expected=err.expected, fix=err.fix) from None
        write_kit_file(node / DCPE_KEYRING, keyring, secret=True)
        write_kit_file(node / AUTHORIZED_NODES, authorized_nodes_bytes(authorized))
        write_manifest(
            node,
            {
                **common,
                "kind": "node",
                "node_id": node_id,
                "node_ids": [node_id],
                "dcpe_key_scope": DCPE_KEY_SCOPE,
                "auth_key_origin": "member",
                "enrolled": _now(),
            },
            NODE_FILES,
        )
        target = nodes / node_id
        for existing in nodes.iterdir():  # a revoked member's folder, when re-enrolled
            if existing.name.lower() == node_id.lower() and existing != staging:
                shutil.rmtree(existing)
        node.rename(target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def enrol_member(
    kits_dir: Path | str, node_id: str, *, auth_pub: str, reenrol: bool = False
) -> Path:
    """Write a new member's kit into a provisioned consortium and authorise its key.

    Args:
        kits_dir: The folder ``fedembed coordinator provision --out`` wrote.
        node_id: The new member's name (``[A-Za-z0-9_-]``, 1 to 64 characters, unused).
        auth_pub: The OpenSSH EC P-384 public key the member made with
            ``fedembed node keygen`` (the text of its ``auth.pub``).
        reenrol: Allow a revoked key, and the name of a revoked member (its old kit
            folder is replaced).

    Returns:
        ``kits_dir/nodes/<node_id>``: ship it to the member, who installs its own
        ``auth.key`` (``fedembed node install-auth-key``) and then the CKKS secret the
        key holder seals for it (``fedembed node ckks-seal`` / ``ckks-install``).

    Raises:
        EnrolmentConflictError: The name is taken, or the key is authorised or revoked.
        ProvisioningError: A malformed name or key, or a kit that does not verify.
    """
    (name,) = validate_node_ids([node_id])
    if not isinstance(auth_pub, str):
        raise ProvisioningError(f"the key is a {type(auth_pub).__name__}", expected="text")
    key = validate_member_keys({name: auth_pub}, (name,))[name]
    kits = _kits(kits_dir)
    with _locked(kits):
        content, raw_manifest, raw_authorized = _coordinator_state(kits)
        authorized = dict(load_coordinator_kit(kits / "coordinator").authorized_nodes)
        _check_new_member(kits, name, key, authorized, revoked_members(kits), reenrol=reenrol)
        common = {
            "format": KIT_FORMAT,
            "consortium_id": content["consortium_id"],
            "created": content["created"],
            "superlink_host": content["superlink_host"],
            "ckks": content["ckks"],
            "ckks_fingerprint": None,  # the key holder seals the CKKS secret to it later
            "ca_fingerprint_sha256": content["ca_fingerprint_sha256"],
        }
        updated = {**authorized, name: key}
        target = _write_node_kit(kits, name, key, updated, common)
        try:
            _write_coordinator(kits, content, updated, (raw_manifest, raw_authorized))
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    logger.info("enrolment: member enrolled (%d authorised)", len(updated))
    return target


def revoke_member(kits_dir: Path | str, node_id: str) -> RevokedMember:
    """Remove a member's key from the coordinator kit's authorised list and record it.

    Its kit folder is kept; its key goes to ``admin/revoked_nodes.json`` so that
    :func:`enrol_member` refuses it unless ``reenrol=True``.

    Raises:
        MemberNotFoundError: No authorised member has this name.
        ProvisioningError: It is the last member, or the coordinator kit does not verify.
    """
    kits = _kits(kits_dir)
    with _locked(kits):
        content, raw_manifest, raw_authorized = _coordinator_state(kits)
        authorized = dict(load_coordinator_kit(kits / "coordinator").authorized_nodes)
        if node_id not in authorized:
            raise MemberNotFoundError(
                f"no authorised member is named {node_id!r}",
                expected="one of " + (", ".join(sorted(authorized)) or "(none)"),
                fix="list the members and use a name from the list",
            )
        if len(authorized) == 1:
            raise ProvisioningError(
                f"{node_id!r} is the consortium's last authorised member",
                expected="at least one member left after a revocation",
                fix="enrol another member first",
            )
        key = authorized.pop(node_id)
        entry = RevokedMember(node_id, key, auth_key_fingerprint(key), _now())
        _write_coordinator(kits, content, authorized, (raw_manifest, raw_authorized))
        _save_revoked(kits, [*revoked_members(kits), entry])
    logger.info("enrolment: member revoked (%d authorised)", len(authorized))
    return entry
