"""Member-made node auth keys: the provisioner gets only the public half.

A node kit's ``auth.key`` (EC P-384) authenticates the SuperNode, signs the node's
contributions and key-ceremony bundles, and opens the CKKS secret sealed to the node
(:mod:`kits.ckks_ceremony`). When provisioning makes it, the provisioner could keep a
copy and open every bundle it relays. A member avoids that by making the key pair on its
own premises (:func:`generate_auth_key`, ``fedembed node keygen``), handing only
``auth.pub`` to the provisioner (``fedembed coordinator provision --node-key
ID=auth.pub``; compare :func:`auth_key_fingerprint` out of band), and installing
``auth.key`` into the kit it receives (:func:`install_auth_key`,
``fedembed node install-auth-key``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.secret_files import read_secret_file
from kits.layout import AUTH_KEY, AUTH_PUB, MANIFEST, ProvisioningError, sha256_file
from kits.loader import load_node_kit

__all__ = [
    "auth_key_fingerprint",
    "generate_auth_key",
    "install_auth_key",
    "validate_member_keys",
]


def auth_key_fingerprint(public_key: str) -> str:
    """``SHA256:...`` of an OpenSSH public key, as ``ssh-keygen -lf`` prints it."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _p384_public(text: str, *, what: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_ssh_public_key(text.strip().encode("ascii"))
    except (ValueError, UnicodeError, UnsupportedAlgorithm) as err:
        raise ProvisioningError(
            f"{what} is not an OpenSSH public key ({err})",
            expected="the auth.pub written by `fedembed node keygen`",
            fix="pass the member's auth.pub file unchanged",
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise ProvisioningError(
            f"{what} is not an EC P-384 key",
            expected="an EC P-384 key (Flower SuperNode auth and the key ceremony use it)",
            fix="make the key with `fedembed node keygen`",
        )
    return key


def validate_member_keys(node_keys: Mapping[str, str], node_ids: tuple[str, ...]) -> dict[str, str]:
    """Check member-made public keys: known node ids, P-384, no key given twice.

    Returns:
        Node id -> the normalised OpenSSH public key line.
    """
    keys: dict[str, str] = {}
    for node_id, text in node_keys.items():
        if node_id not in node_ids:
            raise ProvisioningError(
                f"a key is given for {node_id!r}, which is not a node of this consortium",
                expected=f"keys for nodes among {', '.join(node_ids)}",
                fix="check the --node and --node-key ids",
            )
        if not isinstance(text, str):
            raise ProvisioningError(f"the key of {node_id!r} is not text", expected="str")
        key = _p384_public(text, what=f"the key of {node_id!r}")
        keys[node_id] = key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode("ascii")
    if len(set(keys.values())) != len(keys):
        raise ProvisioningError(
            "two nodes were given the same public key",
            expected="one key pair per member",
            fix="have each member run `fedembed node keygen` itself",
        )
    return keys


def generate_auth_key(out_dir: Path | str) -> Path:
    """Make a node auth key pair in a new folder: ``auth.key`` (0600) and ``auth.pub``.

    Returns:
        The path of ``auth.pub`` (send it to the provisioner; keep ``auth.key``).
    """
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ProvisioningError(
            f"{out} exists and is not an empty folder",
            expected="a new or empty folder for the key pair",
            fix="choose another --out",
        )
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    fd = os.open(out / AUTH_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (out / AUTH_PUB).write_bytes(public + b"\n")
    return out / AUTH_PUB


def install_auth_key(kit: Path | str, key_file: Path | str) -> str:
    """Copy the member's own ``auth.key`` into its kit (0600) after checking it fits.

    Returns:
        The key's fingerprint (:func:`auth_key_fingerprint`).

    Raises:
        ProvisioningError: The kit already has a key, its ``auth.pub`` was altered, or
            the key is not the private half of the kit's ``auth.pub`` (the kit is left
            unchanged).
        SecretFileError: Group or others may access ``key_file``, or another user owns
            it (:mod:`crypto.secret_files`).
    """
    folder = Path(kit).expanduser().absolute()
    target = folder / AUTH_KEY
    if target.exists():
        raise ProvisioningError(
            f"{target} already exists",
            expected="a kit provisioned from this member's public key, without auth.key",
            fix="keep the installed key",
        )
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed = manifest["files"][AUTH_PUB]
        public_text = (folder / AUTH_PUB).read_text(encoding="ascii")
        private_bytes = read_secret_file(key_file, what="node auth key")
        private = serialization.load_ssh_private_key(private_bytes, None)
    except (OSError, ValueError, KeyError, TypeError, UnicodeError, UnsupportedAlgorithm) as err:
        raise ProvisioningError(
            f"the kit {folder} or the key {key_file} cannot be read ({err})",
            expected="a node kit folder and the auth.key made by `fedembed node keygen`",
            fix="check both paths",
        ) from None
    public = _p384_public(public_text, what=str(folder / AUTH_PUB))
    if sha256_file(folder / AUTH_PUB) != listed or private.public_key() != public:
        raise ProvisioningError(
            f"{key_file} is not the private half of {folder / AUTH_PUB}",
            expected="the auth.key made together with the auth.pub sent to the provisioner",
            fix="use the right key file; if the kit's auth.pub is not yours, ask the "
            "provisioner for a kit made from your auth.pub",
        )
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_bytes)
    try:
        load_node_kit(folder)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return auth_key_fingerprint(public_text)
