"""The member-side CKKS key ceremony: no provisioner or coordinator ever holds the secret.

Provisioning writes no CKKS key pair. One member, the key holder, makes it on its own
premises and installs the secret context in its own kit (:func:`ckks_keygen`, CLI
``fedembed node ckks-keygen``). It writes, for the coordinator's operator to relay:

- ``ckks_public.bundle.json``: the public context, signed with the key holder's kit
  auth key; the coordinator installs it (:func:`install_ckks_public`,
  ``fedembed coordinator ckks-install-public``);
- ``ckks_secret.<node_id>.bundle.json`` for every other authorised member: the secret
  context sealed to that member's kit public key (:mod:`crypto.key_wrapping`: ECDH
  P-384, HKDF-SHA384, AES-256-GCM bound to consortium, recipient, sender and CKKS
  fingerprint), signed the same way; the member installs it
  (:func:`install_ckks_secret`, ``fedembed node ckks-install``).

A recipient accepts a bundle only from a sender on its kit's authorised node list, so a
coordinator that substitutes a key pair of its own cannot sign it; every refusal is one
opaque :class:`~kits.ckks_bundle.BundleRefusedError` and leaves the kit unchanged.
:func:`run_ckks_ceremony` runs the same steps on one host (demo, tests, simulation).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.ckks_aggregation import (
    CkksError,
    CkksParameters,
    context_fingerprint,
    is_private_context,
    make_contexts,
)
from crypto.key_wrapping import KeyUnwrapError, seal, unseal
from crypto.secret_files import read_secret_file
from embedding_core.atomic_file import atomic_write_bytes
from kits.ckks_bundle import (
    COORDINATOR_RECIPIENT,
    BundleRefusedError,
    CkksBundle,
    read_bundle,
    secret_associated_data,
    write_bundle,
)
from kits.layout import (
    CKKS_PUBLIC,
    CKKS_SECRET,
    MANIFEST,
    ProvisioningError,
    sha256_file,
    validate_node_ids,
)
from kits.loader import load_coordinator_kit, load_node_kit
from kits.node_keys import validate_member_keys

__all__ = [
    "PUBLIC_BUNDLE",
    "CeremonyBundles",
    "ckks_keygen",
    "ckks_seal_for",
    "install_ckks_public",
    "install_ckks_secret",
    "run_ckks_ceremony",
    "secret_bundle_name",
]

logger = logging.getLogger(__name__)

PUBLIC_BUNDLE: Final = "ckks_public.bundle.json"


def secret_bundle_name(node_id: str) -> str:
    """The file name of the sealed secret context for ``node_id``."""
    return f"ckks_secret.{node_id}.bundle.json"


@dataclass(frozen=True)
class CeremonyBundles:
    """What :func:`ckks_keygen` wrote: bundles to relay, and the fingerprint to compare.

    Attributes:
        key_holder: The node id that made the key pair (and signed every bundle).
        ckks_fingerprint: The key pair's fingerprint; members and the coordinator compare
            it out of band with the one each install prints.
        public_bundle: The coordinator's bundle.
        secret_bundles: Node id -> that member's sealed bundle.
    """

    key_holder: str
    ckks_fingerprint: str
    public_bundle: Path
    secret_bundles: Mapping[str, Path]


def _auth_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_ssh_private_key(read_secret_file(path, what="node auth key"), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):  # the loader already checked it
        raise ProvisioningError(f"{path} is not an EC key", fix="re-provision the kit")
    return key


def _refuse_installed(kit: Path, fingerprint: str | None) -> None:
    if fingerprint is not None:
        raise ProvisioningError(
            f"the kit {kit} already holds the CKKS key pair {fingerprint}",
            expected="a kit that has not been through the CKKS key ceremony",
            fix="keep the installed key pair; to re-key, re-provision the consortium and "
            "run the ceremony again",
        )


def _install(kit: Path, name: str, data: bytes, fingerprint: str, *, secret: bool) -> None:
    """Add ``name`` to the kit (0600 when secret) and to ``kit.json`` with the fingerprint."""
    manifest = kit / MANIFEST
    content: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
    mode = 0o600 if secret else 0o644
    try:
        fd = os.open(kit / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ProvisioningError(
            f"{kit / name} exists but kit.json does not list it",
            expected="no CKKS context file before the key ceremony",
            fix=f"remove the stray {kit / name} and install again",
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(kit / name, mode)
        content["ckks_fingerprint"] = fingerprint
        content["files"] = {**content["files"], name: sha256_file(kit / name)}
        text = json.dumps(content, indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(manifest, text.encode("utf-8"), mode=0o644)
    except BaseException:
        (kit / name).unlink(missing_ok=True)
        raise


def _same_parameters(bundle: CkksBundle, params: CkksParameters) -> bool:
    try:
        return CkksParameters.from_dict(dict(bundle.ckks)) == params
    except (CkksError, KeyError, TypeError, ValueError):
        return False


def ckks_keygen(kit: Path | str, out_dir: Path | str) -> CeremonyBundles:
    """Make the consortium's CKKS key pair on this member and write the bundles.

    Installs the secret context in this member's kit; writes the signed public bundle
    and one sealed, signed secret bundle per other authorised member into ``out_dir``
    (new or empty). Nothing written to ``out_dir`` decrypts without a member's kit key.

    Raises:
        ProvisioningError: The kit is invalid or already holds a key pair, or
            ``out_dir`` is in use.
    """
    node = load_node_kit(kit)
    _refuse_installed(node.path, node.ckks_fingerprint)
    authorized = dict(node.authorized_nodes)  # the loader checked this node's key is on it
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ProvisioningError(
            f"{out} exists and is not an empty folder",
            expected="a new or empty folder for the bundles",
            fix="choose another --out",
        )
    out.mkdir(parents=True, exist_ok=True)
    secret, public = make_contexts(node.ckks_parameters)
    fingerprint = context_fingerprint(public)
    signer = _auth_key(node.auth_key_path)

    def bundle(kind: str, recipient: str, payload: bytes) -> CkksBundle:
        return CkksBundle(
            kind=kind,
            consortium_id=node.consortium_id,
            sender=node.node_id,
            recipient=recipient,
            ckks=node.ckks_parameters.as_dict(),
            ckks_fingerprint=fingerprint,
            payload=payload,
        )

    public_bundle = out / PUBLIC_BUNDLE
    write_bundle(public_bundle, bundle("public", COORDINATOR_RECIPIENT, public), signer)
    secret_bundles: dict[str, Path] = {}
    for member, key_text in sorted(authorized.items()):
        if member == node.node_id:
            continue
        member_key = serialization.load_ssh_public_key(key_text.encode("ascii"))
        if not isinstance(member_key, ec.EllipticCurvePublicKey):
            raise ProvisioningError(
                f"the authorised key of {member!r} is not an EC key", fix="re-provision"
            )
        sealed = seal(
            member_key,
            secret,
            associated_data=secret_associated_data(
                consortium_id=node.consortium_id,
                recipient=member,
                sender=node.node_id,
                ckks_fingerprint=fingerprint,
            ),
        )
        path = out / secret_bundle_name(member)
        write_bundle(path, bundle("secret", member, sealed), signer)
        secret_bundles[member] = path
    _install(node.path, CKKS_SECRET, secret, fingerprint, secret=True)
    logger.info("ckks ceremony: key pair made; %d sealed bundles written", len(secret_bundles))
    return CeremonyBundles(node.node_id, fingerprint, public_bundle, secret_bundles)


def install_ckks_secret(kit: Path | str, bundle: Path | str) -> str:
    """Verify, open and install the key holder's sealed secret context in a member's kit.

    Returns:
        The installed key pair's CKKS fingerprint (compare it with the key holder's).

    Raises:
        BundleRefusedError: The bundle is not for this kit, not signed by an authorised
            member, altered, or its context does not match its fingerprint (one opaque
            error; the kit is unchanged).
        ProvisioningError: The kit is invalid or already holds a key pair.
    """
    node = load_node_kit(kit)
    _refuse_installed(node.path, node.ckks_fingerprint)
    verified = read_bundle(
        Path(bundle),
        kind="secret",
        consortium_id=node.consortium_id,
        recipient=node.node_id,
        authorized_nodes=node.authorized_nodes,
    )
    if not _same_parameters(verified, node.ckks_parameters):
        raise BundleRefusedError()
    associated = secret_associated_data(
        consortium_id=node.consortium_id,
        recipient=node.node_id,
        sender=verified.sender,
        ckks_fingerprint=verified.ckks_fingerprint,
    )
    try:
        secret = unseal(_auth_key(node.auth_key_path), verified.payload, associated_data=associated)
        matches = is_private_context(secret) and (
            context_fingerprint(secret) == verified.ckks_fingerprint
        )
    except (KeyUnwrapError, CkksError):
        raise BundleRefusedError() from None
    if not matches:
        raise BundleRefusedError()
    _install(node.path, CKKS_SECRET, secret, verified.ckks_fingerprint, secret=True)
    load_node_kit(node.path)  # the installed kit passes the checked loader
    logger.info("ckks ceremony: secret context installed")
    return verified.ckks_fingerprint


def ckks_seal_for(kit: Path | str, out_dir: Path | str, *, node_id: str, auth_pub: str) -> Path:
    """Seal this member's installed CKKS secret context to a newly enrolled member.

    The key-holding member (or any member holding the secret) runs it for a member
    enrolled after the ceremony (:func:`kits.enrolment.enrol_member`): the bundle is
    sealed to ``auth_pub`` and signed with this kit's auth key exactly as
    :func:`ckks_keygen` signs its bundles, so the new member installs it with
    :func:`install_ckks_secret`, which accepts it because this kit's member is on the
    new member's authorised list. Compare ``auth_pub``'s fingerprint with the one the
    new member's ``fedembed node keygen`` printed, out of band, before sealing.

    Returns:
        The bundle's path, ``out_dir/ckks_secret.<node_id>.bundle.json``.

    Raises:
        ProvisioningError: The kit holds no CKKS secret yet, ``node_id`` or
            ``auth_pub`` is malformed, ``node_id`` is this kit's own member, or this
            kit's authorised list names ``node_id`` with another key.
    """
    node = load_node_kit(kit)
    secret = node.ckks_secret_context  # refused before this kit holds the secret
    (member,) = validate_node_ids([node_id])
    key_text = validate_member_keys({member: auth_pub}, (member,))[member]
    if member == node.node_id:
        raise ProvisioningError(
            f"{member!r} is this kit's own member",
            expected="the name of the newly enrolled member",
            fix="pass the new member's name and its auth.pub",
        )
    listed = node.authorized_nodes.get(member)
    if listed is not None and listed.strip() != key_text:
        raise ProvisioningError(
            f"this kit's authorised list names {member!r} with another public key",
            expected="the auth.pub this member is authorised with",
            fix="check the key's fingerprint with the member out of band",
        )
    fingerprint = context_fingerprint(secret)
    member_key = serialization.load_ssh_public_key(key_text.encode("ascii"))
    if not isinstance(member_key, ec.EllipticCurvePublicKey):  # validated as P-384 above
        raise ProvisioningError(f"the key of {member!r} is not an EC key")
    sealed = seal(
        member_key,
        secret,
        associated_data=secret_associated_data(
            consortium_id=node.consortium_id,
            recipient=member,
            sender=node.node_id,
            ckks_fingerprint=fingerprint,
        ),
    )
    out = Path(out_dir).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    path = out / secret_bundle_name(member)
    if path.exists():
        raise ProvisioningError(
            f"{path} already exists",
            expected="no earlier bundle for this member in the output folder",
            fix="choose another output folder",
        )
    bundle = CkksBundle(
        kind="secret",
        consortium_id=node.consortium_id,
        sender=node.node_id,
        recipient=member,
        ckks=node.ckks_parameters.as_dict(),
        ckks_fingerprint=fingerprint,
        payload=sealed,
    )
    write_bundle(path, bundle, _auth_key(node.auth_key_path))
    logger.info("ckks ceremony: secret context sealed to one newly enrolled member")
    return path


def install_ckks_public(kit: Path | str, bundle: Path | str) -> str:
    """Verify and install the key holder's signed public context in the coordinator kit.

    Returns:
        The installed key pair's CKKS fingerprint (compare it with the key holder's).

    Raises:
        BundleRefusedError: Not signed by an authorised member, altered, for another
            consortium, or holding a secret key (one opaque error; the kit is unchanged).
        ProvisioningError: The kit is invalid or already holds a public context.
    """
    coordinator = load_coordinator_kit(kit)
    _refuse_installed(coordinator.path, coordinator.ckks_fingerprint)
    verified = read_bundle(
        Path(bundle),
        kind="public",
        consortium_id=coordinator.consortium_id,
        recipient=COORDINATOR_RECIPIENT,
        authorized_nodes=coordinator.authorized_nodes,
    )
    if not _same_parameters(verified, coordinator.ckks_parameters):
        raise BundleRefusedError()
    try:
        matches = not is_private_context(verified.payload) and (
            context_fingerprint(verified.payload) == verified.ckks_fingerprint
        )
    except CkksError:
        raise BundleRefusedError() from None
    if not matches:
        raise BundleRefusedError()
    _install(
        coordinator.path, CKKS_PUBLIC, verified.payload, verified.ckks_fingerprint, secret=False
    )
    load_coordinator_kit(coordinator.path)
    logger.info("ckks ceremony: public context installed in the coordinator kit")
    return verified.ckks_fingerprint


def run_ckks_ceremony(out_dir: Path | str, *, key_holder: str | None = None) -> str:
    """The whole ceremony on one host, through the same steps (demo, tests, simulation).

    Args:
        out_dir: The folder :func:`~kits.provisioning.provision` wrote.
        key_holder: The member that makes the key pair (default: the first node id of
            the coordinator kit).

    Returns:
        The CKKS fingerprint now in every node kit and the coordinator kit.
    """
    out = Path(out_dir).expanduser().absolute()
    node_ids = load_coordinator_kit(out / "coordinator").node_ids
    holder = node_ids[0] if key_holder is None else key_holder
    if holder not in node_ids:
        raise ProvisioningError(
            f"key holder {holder!r} is not a member of this consortium",
            expected=f"one of {', '.join(node_ids)}",
            fix="pass key_holder= one of the provisioned node ids",
        )
    with tempfile.TemporaryDirectory(prefix="ckks-ceremony-") as relay:
        bundles = ckks_keygen(out / "nodes" / holder, Path(relay) / "bundles")
        for member, bundle in bundles.secret_bundles.items():
            install_ckks_secret(out / "nodes" / member, bundle)
        install_ckks_public(out / "coordinator", bundles.public_bundle)
    return bundles.ckks_fingerprint
