"""Loading kits: every file checked against ``kit.json`` before anything is used.

:func:`load_node_kit`, :func:`load_coordinator_kit` and :func:`load_gateway_kit` refuse a
missing, changed or corrupt file with its name, and refuse a secret file (auth key, TLS
key, CKKS secret or search key, DCPE keyring) that group or others may access or another
user owns (:mod:`crypto.secret_files`), before anything reads it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.ckks_aggregation import (
    CkksError,
    CkksParameters,
    context_fingerprint,
    is_private_context,
)
from crypto.dcpe_keys import DcpeKeyring
from crypto.errors import KeyManagementError
from crypto.secret_files import SecretFileError, read_secret_file, require_secret_file
from kits.certificates import cert_fingerprint
from kits.layout import (
    AUTH_KEY,
    AUTH_PUB,
    AUTHORIZED_NODES,
    CA_CERT,
    CKKS_PUBLIC,
    CKKS_SEARCH_KEY,
    CKKS_SECRET,
    COORDINATOR_FILES,
    COORDINATOR_SECRETS,
    DCPE_KEYRING,
    GATEWAY_FILES,
    GATEWAY_SECRETS,
    KIT_FORMAT,
    MANIFEST,
    NODE_FILES,
    NODE_ID_PATTERN,
    NODE_SECRETS,
    SERVER_CERT,
    SERVER_KEY,
    CoordinatorKit,
    GatewayKit,
    NodeKit,
    ProvisioningError,
    sha256_file,
)

__all__ = ["load_coordinator_kit", "load_gateway_kit", "load_node_kit"]

# -- loading -------------------------------------------------------------------------------


def _read_manifest(path: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    kit = Path(path).expanduser().absolute()
    fix = "point to the folder provision() wrote, or re-provision"
    if not kit.is_dir():
        raise ProvisioningError(f"{kit} is not a folder", expected=f"a {kind} kit folder", fix=fix)
    manifest = kit / MANIFEST
    try:
        content = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProvisioningError(
            f"{manifest} does not exist", expected=f"a {kind} kit with its kit.json", fix=fix
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProvisioningError(
            f"{manifest} cannot be read ({err})", expected="a JSON kit manifest", fix=fix
        ) from None
    if not isinstance(content, dict) or content.get("format") != KIT_FORMAT:
        raise ProvisioningError(
            f"{manifest} is not a fedembed kit manifest",
            expected=f'"format": "{KIT_FORMAT}"',
            fix=fix,
        )
    if content.get("kind") != kind:
        raise ProvisioningError(
            f"{kit} is a {content.get('kind')!r} kit",
            expected=f"a {kind} kit",
            fix=f"pass the {kind} kit folder",
        )
    return kit, content


def _secret_refused(err: SecretFileError) -> ProvisioningError:
    return ProvisioningError(err.problem, expected=err.expected, fix=err.fix)


def _require_secret(path: Path) -> None:
    """Refuse a kit secret that group or others may access (:mod:`crypto.secret_files`)."""
    try:
        require_secret_file(path, what="kit secret")
    except SecretFileError as err:
        raise _secret_refused(err) from None


def _read_secret(path: Path) -> bytes:
    """A kit secret's bytes, read under the secret-file rule."""
    try:
        return read_secret_file(path, what="kit secret")
    except SecretFileError as err:
        raise _secret_refused(err) from None


def _verify_files(
    kit: Path, content: Mapping[str, Any], required: Sequence[str], secret: Sequence[str]
) -> None:
    listed = content.get("files")
    if not isinstance(listed, dict):
        raise ProvisioningError(
            f"{kit / MANIFEST} has no file list", expected='a "files" mapping', fix="re-provision"
        )
    for name in secret:  # before anything reads them (hashing does)
        if (kit / name).is_file():
            _require_secret(kit / name)
    for name in required:
        if name not in listed:
            raise ProvisioningError(
                f"{kit / MANIFEST} does not list {name}",
                expected=f"every kit file listed: {', '.join(required)}",
                fix="re-provision the kit",
            )
    for name, digest in listed.items():
        if not isinstance(name, str) or Path(name).name != name or name == MANIFEST:
            raise ProvisioningError(
                f"{kit / MANIFEST} lists {name!r}", expected="plain file names", fix="re-provision"
            )
        file = kit / name
        if not file.is_file():
            raise ProvisioningError(
                f"kit file {file} is missing",
                expected="every file listed in kit.json",
                fix="restore the kit from its original copy, or re-provision",
            )
        if sha256_file(file) != digest:
            raise ProvisioningError(
                f"kit file {file} was modified after provisioning (SHA-256 does not match "
                "kit.json)",
                expected="the file exactly as provision() wrote it",
                fix="restore the kit from its original copy, or re-provision",
            )


def _common(kit: Path, content: Mapping[str, Any]) -> dict[str, Any]:
    try:
        params = CkksParameters.from_dict(content["ckks"])
        fingerprint = content["ckks_fingerprint"]  # None until the CKKS key ceremony
        return {
            "consortium_id": str(content["consortium_id"]),
            "created": str(content["created"]),
            "superlink_host": str(content["superlink_host"]),
            "ckks_parameters": params,
            "ckks_fingerprint": None if fingerprint is None else str(fingerprint),
            "ca_fingerprint": str(content["ca_fingerprint_sha256"]),
        }
    except (KeyError, TypeError, CkksError) as err:
        raise ProvisioningError(
            f"{kit / MANIFEST} is incomplete ({err})",
            expected="a manifest written by provision()",
            fix="re-provision the kit",
        ) from None


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as err:
        raise ProvisioningError(
            f"{path} is not a PEM certificate ({err})", fix="re-provision the kit"
        ) from None


def _check_ca(kit: Path, common: Mapping[str, Any]) -> x509.Certificate:
    ca = _load_cert(kit / CA_CERT)
    if cert_fingerprint(ca) != common["ca_fingerprint"]:
        raise ProvisioningError(
            f"{kit / CA_CERT} is not the consortium CA named in kit.json",
            expected=f"SHA-256 fingerprint {common['ca_fingerprint']}",
            fix="restore the kit from its original copy, or re-provision",
        )
    if ca.not_valid_after_utc < dt.datetime.now(dt.UTC):
        raise ProvisioningError(
            f"the consortium CA in {kit / CA_CERT} expired on {ca.not_valid_after_utc:%Y-%m-%d}",
            expected="a valid CA certificate",
            fix="re-provision the consortium",
        )
    return ca


def _ckks_files(kit: Path, content: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """``(name,)`` once the key ceremony installed the CKKS context, else ``()``."""
    listed = content.get("files")
    installed = isinstance(listed, dict) and name in listed
    if installed != (content.get("ckks_fingerprint") is not None):
        raise ProvisioningError(
            f"{kit / MANIFEST} {'lists' if installed else 'does not list'} {name} but "
            f"{'names no' if installed else 'names a'} CKKS fingerprint",
            expected="both or neither (the key ceremony adds them together)",
            fix="restore the kit from its original copy, or re-run the CKKS key ceremony",
        )
    return (name,) if installed else ()


def _check_ckks(path: Path, data: bytes, fingerprint: str, *, private: bool) -> None:
    try:
        is_private = is_private_context(data)
        actual = context_fingerprint(data)
    except CkksError as err:
        raise ProvisioningError(
            f"{path} is not a usable CKKS context ({err.problem})", fix="re-provision the kit"
        ) from None
    if is_private != private:
        raise ProvisioningError(
            f"{path} {'lacks' if private else 'holds'} the CKKS secret key",
            expected="a secret context in node kits and a public context in the coordinator kit",
            fix="re-provision; never copy a node's ckks_secret.ctx to the coordinator",
        )
    if actual != fingerprint:
        raise ProvisioningError(
            f"{path} belongs to another CKKS key pair than the one named in kit.json",
            expected=f"CKKS fingerprint {fingerprint}",
            fix="restore the kit from its original copy, or re-provision",
        )


def _check_keyring(path: Path, consortium_id: str) -> None:
    try:
        keyring = DcpeKeyring.load(path)
    except KeyManagementError as err:
        raise ProvisioningError(
            f"kit file {path} is not a usable DCPE keyring ({err.problem})",
            expected=err.expected or "a keyring written by provision()",
            fix=err.fix or "restore the kit from its original copy, or re-provision",
        ) from None
    if keyring.tenant != consortium_id:
        raise ProvisioningError(
            f"kit file {path} is the DCPE keyring of tenant {keyring.tenant!r}, not of "
            f"consortium {consortium_id!r}",
            expected="the keyring provision() wrote for this consortium",
            fix="restore the kit from its original copy, or re-provision; never copy a "
            "keyring between consortia",
        )


def _load_authorized(kit: Path) -> dict[str, str]:
    """The kit's authorised node list: node id -> OpenSSH EC public key."""
    try:
        authorized = json.loads((kit / AUTHORIZED_NODES).read_text(encoding="utf-8"))
        if not isinstance(authorized, dict):
            raise ValueError("not a JSON object")
        for node_id, key in authorized.items():
            if not isinstance(node_id, str) or not NODE_ID_PATTERN.fullmatch(node_id):
                raise ValueError(f"{node_id!r} is not a node id")
            if not isinstance(key, str) or not isinstance(
                serialization.load_ssh_public_key(key.encode("ascii")), ec.EllipticCurvePublicKey
            ):
                raise ValueError(f"the key of {node_id!r} is not an EC public key")
    except (ValueError, UnicodeError, UnsupportedAlgorithm) as err:
        raise ProvisioningError(
            f"{kit / AUTHORIZED_NODES} is invalid ({err})",
            expected="a JSON object: node id -> OpenSSH EC public key",
            fix="re-provision the kit",
        ) from None
    return dict(authorized)


def load_node_kit(path: Path | str) -> NodeKit:
    """Load and verify a member node's kit.

    Checks the manifest hashes, that ``auth.pub`` matches ``auth.key`` (an EC key
    Flower accepts), that the CKKS context (once the key ceremony installed it) holds
    the secret key of the fingerprint in ``kit.json``, and that the DCPE
    keyring loads (mode 0600) and belongs to the kit's consortium, and that the kit's
    authorised node list parses and holds this node's own ``auth.pub``. Refuses a secret
    file (``auth.key``, the CKKS secret, the keyring) that group or others may access.

    Raises:
        ProvisioningError: Naming the missing, altered or invalid file.
    """
    kit, content = _read_manifest(Path(path), "node")
    if not (kit / AUTH_KEY).is_file():
        raise ProvisioningError(
            f"kit file {kit / AUTH_KEY} is missing",
            expected="this member's SuperNode auth key (made by provisioning, or by "
            "`fedembed node keygen` on the member's premises)",
            fix="install the key made for this kit: `fedembed node install-auth-key --kit "
            "KIT --key auth.key` (docs/key_custody.md), or restore the kit",
        )
    ckks = _ckks_files(kit, content, CKKS_SECRET)
    _verify_files(kit, content, NODE_FILES + ckks, NODE_SECRETS + ckks)
    common = _common(kit, content)
    node_id = content.get("node_id")
    if not isinstance(node_id, str) or not NODE_ID_PATTERN.fullmatch(node_id):
        raise ProvisioningError(
            f"{kit / MANIFEST} has no valid node_id", fix="re-provision the kit"
        )
    _check_ca(kit, common)
    try:
        private_key = serialization.load_ssh_private_key(_read_secret(kit / AUTH_KEY), None)
        public_key = serialization.load_ssh_public_key((kit / AUTH_PUB).read_bytes())
    except (ValueError, UnsupportedAlgorithm) as err:
        raise ProvisioningError(
            f"the SuperNode auth key pair in {kit} cannot be loaded ({err})",
            expected="an OpenSSH EC private key (auth.key) and public key (auth.pub)",
            fix="re-provision the kit",
        ) from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        public_key, ec.EllipticCurvePublicKey
    ):
        raise ProvisioningError(
            f"the SuperNode auth key in {kit} is not an EC key",
            expected="EC keys, as Flower's SuperNode authentication requires",
            fix="re-provision the kit",
        )
    if private_key.public_key() != public_key:
        raise ProvisioningError(
            f"{kit / AUTH_PUB} does not match {kit / AUTH_KEY}",
            expected="the public half of auth.key",
            fix="restore the kit from its original copy, or re-provision",
        )
    secret_ctx = _read_secret(kit / CKKS_SECRET) if ckks else None
    if secret_ctx is not None:
        _check_ckks(kit / CKKS_SECRET, secret_ctx, common["ckks_fingerprint"], private=True)
    _check_keyring(kit / DCPE_KEYRING, common["consortium_id"])
    authorized = _load_authorized(kit)
    auth_public_key = (kit / AUTH_PUB).read_text(encoding="ascii").strip()
    owners = [other for other, key in authorized.items() if key.strip() == auth_public_key]
    listed = content.get("node_ids")
    owners += [str(n) for n in listed if n != node_id] if isinstance(listed, list) else []
    if owners and node_id not in owners:
        named = owners[0]
        raise ProvisioningError(
            f"{kit / MANIFEST} names node_id {node_id!r}, but this kit was provisioned for "
            f"{named!r} (its {AUTH_PUB} is authorised under that id): kit.json was edited",
            expected=f'"node_id": "{named}", as provisioning wrote it',
            fix="restore the kit from its original copy; a node's id is fixed at "
            "provisioning (ask the consortium admin for a kit under another id)",
        )
    if authorized.get(node_id, "").strip() != auth_public_key:
        raise ProvisioningError(
            f"{kit / AUTHORIZED_NODES} does not hold this node's {AUTH_PUB} under {node_id!r}",
            expected="the consortium's authorised node list, this node's key among them",
            fix="restore the kit from its original copy, or re-provision",
        )
    return NodeKit(
        path=kit,
        node_id=node_id,
        **common,
        ca_cert_path=kit / CA_CERT,
        auth_key_path=kit / AUTH_KEY,
        auth_pub_path=kit / AUTH_PUB,
        ckks_secret_path=kit / CKKS_SECRET if ckks else None,
        dcpe_keyring_path=kit / DCPE_KEYRING,
        auth_public_key=auth_public_key,
        authorized_nodes_path=kit / AUTHORIZED_NODES,
        authorized_nodes=authorized,
        ckks_secret=secret_ctx,
    )


def load_coordinator_kit(path: Path | str) -> CoordinatorKit:
    """Load and verify the coordinator's kit.

    Checks the manifest hashes, that the server certificate was issued by the kit's CA,
    is in date and matches ``server.key``, that the CKKS context (once installed) holds
    *no* secret key,
    and that every authorized node key parses. Refuses ``server.key`` when group or
    others may access it.

    Raises:
        ProvisioningError: Naming the missing, altered or invalid file.
    """
    kit, content = _read_manifest(Path(path), "coordinator")
    ckks = _ckks_files(kit, content, CKKS_PUBLIC)
    _verify_files(kit, content, COORDINATOR_FILES + ckks, COORDINATOR_SECRETS)
    common = _common(kit, content)
    ca = _check_ca(kit, common)
    server = _load_cert(kit / SERVER_CERT)
    try:
        server.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise ProvisioningError(
            f"{kit / SERVER_CERT} was not issued by the CA in {kit / CA_CERT}",
            fix="re-provision the kit",
        ) from None
    if server.not_valid_after_utc < dt.datetime.now(dt.UTC):
        raise ProvisioningError(
            f"{kit / SERVER_CERT} expired on {server.not_valid_after_utc:%Y-%m-%d}",
            expected="a valid server certificate",
            fix="re-provision the consortium",
        )
    try:
        server_key = serialization.load_pem_private_key(_read_secret(kit / SERVER_KEY), None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise ProvisioningError(
            f"{kit / SERVER_KEY} cannot be loaded ({err})", fix="re-provision the kit"
        ) from None
    if server_key.public_key() != server.public_key():
        raise ProvisioningError(
            f"{kit / SERVER_KEY} does not match {kit / SERVER_CERT}", fix="re-provision the kit"
        )
    public_ctx = (kit / CKKS_PUBLIC).read_bytes() if ckks else None
    if public_ctx is not None:
        _check_ckks(kit / CKKS_PUBLIC, public_ctx, common["ckks_fingerprint"], private=False)
    authorized = _load_authorized(kit)
    node_ids = content.get("node_ids")
    if not isinstance(node_ids, list) or sorted(node_ids) != sorted(authorized):
        raise ProvisioningError(
            f"{kit / MANIFEST} and {kit / AUTHORIZED_NODES} name different nodes",
            fix="re-provision the kit",
        )
    return CoordinatorKit(
        path=kit,
        **common,
        node_ids=tuple(node_ids),
        ca_cert_path=kit / CA_CERT,
        server_cert_path=kit / SERVER_CERT,
        server_key_path=kit / SERVER_KEY,
        ckks_public_path=kit / CKKS_PUBLIC if ckks else None,
        authorized_nodes_path=kit / AUTHORIZED_NODES,
        authorized_nodes=dict(authorized),
        ckks_public=public_ctx,
    )


def load_gateway_kit(path: Path | str) -> GatewayKit:
    """Load and verify the query gateway's kit.

    Checks the manifest hashes and that the DCPE keyring loads (mode 0600) and belongs to
    the kit's consortium.

    Raises:
        ProvisioningError: Naming the missing, altered or invalid file.
    """
    kit, content = _read_manifest(Path(path), "gateway")
    _verify_files(kit, content, GATEWAY_FILES, GATEWAY_SECRETS)
    consortium_id, node_ids = content.get("consortium_id"), content.get("node_ids")
    if (
        not isinstance(consortium_id, str)
        or not isinstance(node_ids, list)
        or not all(isinstance(n, str) and NODE_ID_PATTERN.fullmatch(n) for n in node_ids)
    ):
        raise ProvisioningError(
            f"{kit / MANIFEST} is incomplete (consortium_id or node_ids)",
            expected="a manifest written by provision()",
            fix="re-provision the kit",
        )
    _check_keyring(kit / DCPE_KEYRING, consortium_id)
    return GatewayKit(
        path=kit,
        consortium_id=consortium_id,
        node_ids=tuple(node_ids),
        dcpe_keyring_path=kit / DCPE_KEYRING,
        ckks_search_key_path=kit / CKKS_SEARCH_KEY,
    )
