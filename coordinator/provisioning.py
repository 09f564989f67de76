"""Consortium provisioning: one admin step writes every party's key material.

``provision(out_dir, node_ids=[...])`` creates (like NVIDIA FLARE's ``provision``)::

    out_dir/
      admin/                 kept by the consortium admin, never shipped
        ca.key  ca.crt       self-signed root CA (EC P-384); ca.key is mode 0600
      coordinator/           shipped to the coordinator (SuperLink + ServerApp)
        ca.crt  server.crt  server.key  ckks_public.ctx  authorized_nodes.json  kit.json
      gateway/               shipped to the query gateway (secure index service)
        dcpe_keyring.json  kit.json
      nodes/<node_id>/       shipped to one member organisation (SuperNode + ClientApp)
        ca.crt  auth.key  auth.pub  ckks_secret.ctx  dcpe_keyring.json  kit.json

The coordinator kit holds no secret that decrypts member data: its CKKS context carries
the public key only, and it holds no DCPE key. Every node kit holds the same CKKS secret
context (nodes decrypt the aggregate), its own SuperNode authentication key, and the
consortium's one DCPE keyring (:class:`~secure_index.crypto.dcpe_keys.DcpeKeyring`,
tenant = consortium id): distance-comparison-preserving encryption (Fuchsbauer et al.,
SCN 2022) only keeps ciphertext distances meaningful between vectors encrypted under the
same key, so every node uploading to a collection and the gateway encrypting queries
share it. The gateway kit holds that DCPE query key and nothing else: whoever runs the
gateway can decrypt every node's DCPE-encrypted vectors, so it must be trusted with the
members' embeddings (it cannot decrypt CKKS aggregates or impersonate a node).

Use the material with Flower 1.42::

    # CoordinatorKit.superlink_tls_args():
    flower-superlink --ssl-certfile server.crt --ssl-keyfile server.key --ssl-ca-certfile ca.crt
    # NodeKit.supernode_args():
    flower-supernode --root-certificates ca.crt --auth-supernode-private-key auth.key
    # register each key of authorized_nodes.json with the SuperLink:
    flwr supernode register auth.pub NAME

``kit.json`` lists the SHA-256 of every file of the kit; :func:`load_node_kit`,
:func:`load_coordinator_kit` and :func:`load_gateway_kit` check them (a changed or
corrupt file is refused with its name), warn when a secret file is readable by group or
others, and refuse such a DCPE keyring. The hashes catch corruption and accidental
edits, not an attacker who can rewrite the whole kit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import math
import os
import re
import shutil
import stat
import tempfile
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from coordinator.ckks_aggregation import (
    CkksError,
    CkksParameters,
    context_fingerprint,
    is_private_context,
    make_contexts,
)
from embedding_core.errors import FedembedError
from secure_index.crypto.dcpe import BETA_MAX
from secure_index.crypto.dcpe_keys import DcpeKeyring
from secure_index.errors import KeyManagementError

__all__ = [
    "DCPE_KEYRING",
    "DEFAULT_DCPE_BETA",
    "KIT_FORMAT",
    "CoordinatorKit",
    "GatewayKit",
    "KitPermissionWarning",
    "NodeKit",
    "ProvisionResult",
    "ProvisioningError",
    "load_coordinator_kit",
    "load_gateway_kit",
    "load_node_kit",
    "provision",
    "validate_node_ids",
]

KIT_FORMAT: Final = "fedembed-kit/1"
MANIFEST: Final = "kit.json"

CA_KEY, CA_CERT = "ca.key", "ca.crt"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
CKKS_PUBLIC, CKKS_SECRET = "ckks_public.ctx", "ckks_secret.ctx"
AUTHORIZED_NODES = "authorized_nodes.json"
AUTH_KEY, AUTH_PUB = "auth.key", "auth.pub"
DCPE_KEYRING: Final = "dcpe_keyring.json"
DCPE_KEY_SCOPE: Final = "consortium"
# Measured: with beta 1.0, SciFact nDCG@10 over DCPE ciphertexts stayed within 2 points of
# plaintext search in every one of 30 runs (mean loss 0.5 points).
DEFAULT_DCPE_BETA: Final = 1.0

_COORDINATOR_FILES: Final = (CA_CERT, SERVER_CERT, SERVER_KEY, CKKS_PUBLIC, AUTHORIZED_NODES)
_COORDINATOR_SECRETS: Final = (SERVER_KEY,)
_NODE_FILES: Final = (CA_CERT, AUTH_KEY, AUTH_PUB, CKKS_SECRET, DCPE_KEYRING)
# DCPE_KEYRING is secret too; DcpeKeyring.load refuses it (not just warns) when readable.
_NODE_SECRETS: Final = (AUTH_KEY, CKKS_SECRET)
_GATEWAY_FILES: Final = (DCPE_KEYRING,)
_GATEWAY_SECRETS: Final = ()
_PARTS: Final = ("admin", "coordinator", "gateway", "nodes")

_NODE_ID = re.compile(r"[A-Za-z0-9_-]+")
_NODE_ID_MAX = 64
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_CLOCK_SKEW = dt.timedelta(minutes=5)


class ProvisioningError(FedembedError):
    """Provisioning input is invalid, or a kit is missing, corrupt or altered."""


class KitPermissionWarning(UserWarning):
    """A secret file of a kit is readable by its group or by other users."""


# -- results and kits ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionResult:
    """Where :func:`provision` wrote what.

    Attributes:
        out_dir: The output folder.
        admin_dir: ``out_dir/admin`` (CA key and certificate; keep offline).
        coordinator_dir: ``out_dir/coordinator`` (the coordinator kit).
        gateway_dir: ``out_dir/gateway`` (the query gateway's kit: the DCPE keyring).
        node_dirs: Node id -> ``out_dir/nodes/<node_id>`` (one kit per member).
        consortium_id: Random id written into every kit.
        ca_fingerprint: SHA-256 (hex) of the CA certificate (DER), to pin out of band.
        ckks_fingerprint: :func:`~coordinator.ckks_aggregation.context_fingerprint` of
            the consortium's CKKS key pair.
    """

    out_dir: Path
    admin_dir: Path
    coordinator_dir: Path
    gateway_dir: Path
    node_dirs: Mapping[str, Path]
    consortium_id: str
    ca_fingerprint: str
    ckks_fingerprint: str


@dataclass(frozen=True)
class NodeKit:
    """A member node's verified kit (secret contents are left out of ``repr``)."""

    path: Path
    node_id: str
    consortium_id: str
    created: str
    superlink_host: str
    ckks_parameters: CkksParameters
    ckks_fingerprint: str
    ca_fingerprint: str
    ca_cert_path: Path
    auth_key_path: Path
    auth_pub_path: Path
    ckks_secret_path: Path
    dcpe_keyring_path: Path
    auth_public_key: str
    ckks_secret_context: bytes = field(repr=False)

    def supernode_args(self) -> list[str]:
        """``flower-supernode`` arguments for TLS trust and node authentication."""
        return [
            "--root-certificates",
            str(self.ca_cert_path),
            "--auth-supernode-private-key",
            str(self.auth_key_path),
            "--auth-supernode-public-key",
            str(self.auth_pub_path),
        ]


@dataclass(frozen=True)
class CoordinatorKit:
    """The coordinator's verified kit: TLS server identity and public CKKS context."""

    path: Path
    consortium_id: str
    created: str
    superlink_host: str
    node_ids: tuple[str, ...]
    ckks_parameters: CkksParameters
    ckks_fingerprint: str
    ca_fingerprint: str
    ca_cert_path: Path
    server_cert_path: Path
    server_key_path: Path
    ckks_public_path: Path
    authorized_nodes_path: Path
    authorized_nodes: Mapping[str, str]
    ckks_public_context: bytes = field(repr=False)

    def superlink_tls_args(self) -> list[str]:
        """``flower-superlink`` arguments that serve HTTPS with the kit's certificate."""
        return [
            "--ssl-certfile",
            str(self.server_cert_path),
            "--ssl-keyfile",
            str(self.server_key_path),
            "--ssl-ca-certfile",
            str(self.ca_cert_path),
        ]


@dataclass(frozen=True)
class GatewayKit:
    """The query gateway's verified kit: the consortium's DCPE keyring.

    Load the key with ``DcpeKeyring.load(kit.dcpe_keyring_path)``.
    """

    path: Path
    consortium_id: str
    node_ids: tuple[str, ...]
    dcpe_keyring_path: Path


# -- validation ----------------------------------------------------------------------------


def validate_node_ids(node_ids: Sequence[str]) -> tuple[str, ...]:
    """Check node ids: at least one; each non-empty, ``[A-Za-z0-9_-]+``, unique.

    Uniqueness ignores case, since node kit folders must not collide on
    case-insensitive file systems.

    Raises:
        ProvisioningError: Naming the offending id.
    """
    if isinstance(node_ids, str):
        raise ProvisioningError(
            f"node_ids is the string {node_ids!r}",
            expected="a list of node ids",
            fix=f"pass node_ids=[{node_ids!r}]",
        )
    ids = tuple(node_ids)
    if not ids:
        raise ProvisioningError(
            "no node ids given",
            expected="at least one member node id",
            fix="pass node_ids such as ['hospital-a', 'hospital-b']",
        )
    seen: dict[str, str] = {}
    for node_id in ids:
        if not isinstance(node_id, str) or not node_id:
            raise ProvisioningError(
                f"node id {node_id!r} is empty or not a string",
                expected="a non-empty string of letters, digits, '_' and '-'",
                fix="give every node a name such as 'hospital-a'",
            )
        if not _NODE_ID.fullmatch(node_id) or len(node_id) > _NODE_ID_MAX:
            raise ProvisioningError(
                f"node id {node_id!r} is invalid",
                expected=f"1 to {_NODE_ID_MAX} characters from A-Z, a-z, 0-9, '_' and '-'",
                fix="rename the node, e.g. replace spaces and dots with '-'",
            )
        key = node_id.lower()
        if key in seen:
            raise ProvisioningError(
                f"node id {node_id!r} is given twice"
                + (f" (as {seen[key]!r}; case is ignored)" if seen[key] != node_id else ""),
                expected="unique node ids",
                fix="give every member node its own id",
            )
        seen[key] = node_id
    return ids


def _validate_host(host: str) -> x509.GeneralName:
    if not isinstance(host, str) or not host:
        raise ProvisioningError(
            f"superlink_host is {host!r}",
            expected="the IP address or DNS name the SuperNodes connect to",
            fix="pass e.g. superlink_host='coordinator.example.org'",
        )
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host[:-1] if host.endswith(".") else host
        if len(name) > 253 or not all(_HOST_LABEL.fullmatch(p) for p in name.split(".")):
            raise ProvisioningError(
                f"superlink_host {host!r} is neither an IP address nor a valid DNS name",
                expected="an IP address or a DNS name such as coordinator.example.org",
                fix="pass the host name without scheme, port or path",
            ) from None
        return x509.DNSName(name.lower())
    if address.is_unspecified:
        raise ProvisioningError(
            f"superlink_host {host!r} is the unspecified address",
            expected="the address the SuperNodes dial, not the one the SuperLink binds",
            fix="pass the coordinator's reachable IP address or DNS name",
        )
    return x509.IPAddress(address)


# -- writing -------------------------------------------------------------------------------


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Create ``path`` (never overwrite); secrets are 0600 from the first byte."""
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have removed bits from a public file


def _mkdir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True)
    os.chmod(path, 0o700)
    return path


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_manifest(directory: Path, content: dict[str, Any], files: Sequence[str]) -> None:
    content = {**content, "files": {name: _sha256_file(directory / name) for name in files}}
    _write(directory / MANIFEST, (json.dumps(content, indent=2, sort_keys=True) + "\n").encode())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedembed consortium"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _make_ca(
    consortium_id: str, now: dt.datetime, days: int
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP384R1())
    name = _name(f"fedembed consortium root CA {consortium_id[:8]}")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def _make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    host: str,
    host_name: x509.GeneralName,
    now: dt.datetime,
    days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP384R1())
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    if host_name not in sans:
        sans.append(host_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _cert_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def provision(
    out_dir: Path | str,
    *,
    node_ids: Sequence[str],
    superlink_host: str = "127.0.0.1",
    ckks: CkksParameters | None = None,
    validity_days: int = 365,
    dcpe_beta: float = DEFAULT_DCPE_BETA,
    force: bool = False,
) -> ProvisionResult:
    """Write the admin CA, the coordinator kit, the gateway kit and one kit per node.

    Args:
        out_dir: Output folder; must not exist or be empty, unless ``force``.
        node_ids: Member node ids (``[A-Za-z0-9_-]+``, unique).
        superlink_host: IP address or DNS name SuperNodes dial; it joins 127.0.0.1 and
            localhost in the server certificate's subjectAltName.
        ckks: CKKS parameters (default :class:`CkksParameters`).
        validity_days: Lifetime of the CA and server certificates.
        dcpe_beta: Approximation bound of the consortium's DCPE key (larger hides more
            and ranks worse; see :data:`DEFAULT_DCPE_BETA`).
        force: Replace the ``admin``, ``coordinator``, ``gateway`` and ``nodes`` folders
            of an existing ``out_dir`` (other files in it are left alone).

    Returns:
        Where everything was written, with the CA and CKKS fingerprints.

    Raises:
        ProvisioningError: Invalid input, or ``out_dir`` is in use and ``force`` is off.
    """
    ids = validate_node_ids(node_ids)
    host_name = _validate_host(superlink_host)
    if isinstance(validity_days, bool) or not isinstance(validity_days, int):
        raise ProvisioningError(
            f"validity_days is {validity_days!r}", expected="an integer number of days"
        )
    if not 1 <= validity_days <= 3650:
        raise ProvisioningError(
            f"validity_days is {validity_days}",
            expected="between 1 and 3650 days",
            fix="pass e.g. validity_days=365 and re-provision before expiry",
        )
    if ckks is not None and not isinstance(ckks, CkksParameters):
        raise ProvisioningError(
            f"ckks is a {type(ckks).__name__}", expected="a CkksParameters instance or None"
        )
    params = ckks or CkksParameters()
    if (
        isinstance(dcpe_beta, bool)
        or not isinstance(dcpe_beta, int | float)
        or not (math.isfinite(dcpe_beta) and 0.0 < dcpe_beta <= BETA_MAX)
    ):
        raise ProvisioningError(
            f"dcpe_beta is {dcpe_beta!r}",
            expected=f"a number with 0 < dcpe_beta <= {BETA_MAX:g}",
            fix=f"pass e.g. dcpe_beta={DEFAULT_DCPE_BETA}",
        )

    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise ProvisioningError(
            f"{out} exists and is not a folder",
            expected="a new or empty output folder",
            fix="choose another out_dir",
        )
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ProvisioningError(
            f"{out} already exists and is not empty",
            expected="a new or empty output folder (provisioning never overwrites keys)",
            fix="choose another out_dir, or pass force=True to replace its admin, "
            "coordinator, gateway and nodes folders",
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.provision-", dir=out.parent))
    try:
        result = _provision_into(
            staging, out, ids, superlink_host, host_name, params, validity_days, dcpe_beta
        )
        if not out.exists():
            staging.rename(out)
        else:
            for part in _PARTS:
                if (out / part).is_symlink() or (out / part).is_file():
                    (out / part).unlink()
                elif (out / part).exists():
                    shutil.rmtree(out / part)
                (staging / part).rename(out / part)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return result


def _provision_into(
    staging: Path,
    out: Path,
    ids: tuple[str, ...],
    host: str,
    host_name: x509.GeneralName,
    params: CkksParameters,
    days: int,
    dcpe_beta: float,
) -> ProvisionResult:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    created = now.isoformat().replace("+00:00", "Z")
    consortium_id = uuid.uuid4().hex

    ca_key, ca_cert = _make_ca(consortium_id, now, days)
    ca_pem = _pem_cert(ca_cert)
    ca_fingerprint = _cert_fingerprint(ca_cert)
    admin = _mkdir(staging / "admin")
    _write(admin / CA_KEY, _pem_private(ca_key), secret=True)
    _write(admin / CA_CERT, ca_pem)

    secret_ctx, public_ctx = make_contexts(params)
    ckks_fingerprint = context_fingerprint(public_ctx)
    common = {
        "format": KIT_FORMAT,
        "consortium_id": consortium_id,
        "created": created,
        "superlink_host": host,
        "ckks": params.as_dict(),
        "ckks_fingerprint": ckks_fingerprint,
        "ca_fingerprint_sha256": ca_fingerprint,
    }

    gateway = _mkdir(staging / "gateway")
    try:
        DcpeKeyring.create(gateway / DCPE_KEYRING, tenant=consortium_id, beta=dcpe_beta)
    except KeyManagementError as err:
        raise ProvisioningError(
            f"the consortium DCPE keyring cannot be created ({err.problem})",
            expected=err.expected,
            fix=err.fix,
        ) from None
    keyring = (gateway / DCPE_KEYRING).read_bytes()
    _write_manifest(
        gateway,
        {
            "format": KIT_FORMAT,
            "kind": "gateway",
            "consortium_id": consortium_id,
            "created": created,
            "node_ids": list(ids),
            "dcpe_key_scope": DCPE_KEY_SCOPE,
        },
        _GATEWAY_FILES,
    )

    authorized: dict[str, str] = {}
    for node_id in ids:
        node = _mkdir(staging / "nodes" / node_id)
        auth_key = ec.generate_private_key(ec.SECP384R1())
        auth_pub = auth_key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        authorized[node_id] = auth_pub.decode("ascii")
        _write(node / CA_CERT, ca_pem)
        _write(
            node / AUTH_KEY,
            auth_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ),
            secret=True,
        )
        _write(node / AUTH_PUB, auth_pub + b"\n")
        _write(node / CKKS_SECRET, secret_ctx, secret=True)
        _write(node / DCPE_KEYRING, keyring, secret=True)
        _write_manifest(
            node,
            {
                **common,
                "kind": "node",
                "node_id": node_id,
                "node_ids": [node_id],
                "dcpe_key_scope": DCPE_KEY_SCOPE,
            },
            _NODE_FILES,
        )

    coordinator = _mkdir(staging / "coordinator")
    server_key, server_cert = _make_server_cert(ca_key, ca_cert, host, host_name, now, days)
    _write(coordinator / CA_CERT, ca_pem)
    _write(coordinator / SERVER_CERT, _pem_cert(server_cert))
    _write(coordinator / SERVER_KEY, _pem_private(server_key), secret=True)
    _write(coordinator / CKKS_PUBLIC, public_ctx)
    _write(
        coordinator / AUTHORIZED_NODES,
        (json.dumps(authorized, indent=2, sort_keys=True) + "\n").encode(),
    )
    _write_manifest(
        coordinator,
        {**common, "kind": "coordinator", "node_ids": list(ids)},
        _COORDINATOR_FILES,
    )

    return ProvisionResult(
        out_dir=out,
        admin_dir=out / "admin",
        coordinator_dir=out / "coordinator",
        gateway_dir=out / "gateway",
        node_dirs={node_id: out / "nodes" / node_id for node_id in ids},
        consortium_id=consortium_id,
        ca_fingerprint=ca_fingerprint,
        ckks_fingerprint=ckks_fingerprint,
    )


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


def _verify_files(
    kit: Path, content: Mapping[str, Any], required: Sequence[str], secret: Sequence[str]
) -> None:
    listed = content.get("files")
    if not isinstance(listed, dict):
        raise ProvisioningError(
            f"{kit / MANIFEST} has no file list", expected='a "files" mapping', fix="re-provision"
        )
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
        if _sha256_file(file) != digest:
            raise ProvisioningError(
                f"kit file {file} was modified after provisioning (SHA-256 does not match "
                "kit.json)",
                expected="the file exactly as provision() wrote it",
                fix="restore the kit from its original copy, or re-provision",
            )
    if os.name == "posix":
        for name in secret:
            mode = (kit / name).stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                warnings.warn(
                    f"kit secret {kit / name} is accessible by group or others "
                    f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {kit / name}",
                    KitPermissionWarning,
                    stacklevel=3,
                )


def _common(kit: Path, content: Mapping[str, Any]) -> dict[str, Any]:
    try:
        params = CkksParameters.from_dict(content["ckks"])
        return {
            "consortium_id": str(content["consortium_id"]),
            "created": str(content["created"]),
            "superlink_host": str(content["superlink_host"]),
            "ckks_parameters": params,
            "ckks_fingerprint": str(content["ckks_fingerprint"]),
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
    if _cert_fingerprint(ca) != common["ca_fingerprint"]:
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


def load_node_kit(path: Path | str) -> NodeKit:
    """Load and verify a member node's kit.

    Checks the manifest hashes, that ``auth.pub`` matches ``auth.key`` (an EC key
    Flower accepts), that the CKKS context holds the secret key, and that the DCPE
    keyring loads (mode 0600) and belongs to the kit's consortium. Warns
    (:class:`KitPermissionWarning`) when another secret file is accessible by group or
    others.

    Raises:
        ProvisioningError: Naming the missing, altered or invalid file.
    """
    kit, content = _read_manifest(Path(path), "node")
    _verify_files(kit, content, _NODE_FILES, _NODE_SECRETS)
    common = _common(kit, content)
    node_id = content.get("node_id")
    if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
        raise ProvisioningError(
            f"{kit / MANIFEST} has no valid node_id", fix="re-provision the kit"
        )
    _check_ca(kit, common)
    try:
        private_key = serialization.load_ssh_private_key((kit / AUTH_KEY).read_bytes(), None)
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
    secret_ctx = (kit / CKKS_SECRET).read_bytes()
    _check_ckks(kit / CKKS_SECRET, secret_ctx, common["ckks_fingerprint"], private=True)
    _check_keyring(kit / DCPE_KEYRING, common["consortium_id"])
    return NodeKit(
        path=kit,
        node_id=node_id,
        **common,
        ca_cert_path=kit / CA_CERT,
        auth_key_path=kit / AUTH_KEY,
        auth_pub_path=kit / AUTH_PUB,
        ckks_secret_path=kit / CKKS_SECRET,
        dcpe_keyring_path=kit / DCPE_KEYRING,
        auth_public_key=(kit / AUTH_PUB).read_text(encoding="ascii").strip(),
        ckks_secret_context=secret_ctx,
    )


def load_coordinator_kit(path: Path | str) -> CoordinatorKit:
    """Load and verify the coordinator's kit.

    Checks the manifest hashes, that the server certificate was issued by the kit's CA,
    is in date and matches ``server.key``, that the CKKS context holds *no* secret key,
    and that every authorized node key parses. Warns (:class:`KitPermissionWarning`)
    when ``server.key`` is accessible by group or others.

    Raises:
        ProvisioningError: Naming the missing, altered or invalid file.
    """
    kit, content = _read_manifest(Path(path), "coordinator")
    _verify_files(kit, content, _COORDINATOR_FILES, _COORDINATOR_SECRETS)
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
        server_key = serialization.load_pem_private_key((kit / SERVER_KEY).read_bytes(), None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise ProvisioningError(
            f"{kit / SERVER_KEY} cannot be loaded ({err})", fix="re-provision the kit"
        ) from None
    if server_key.public_key() != server.public_key():
        raise ProvisioningError(
            f"{kit / SERVER_KEY} does not match {kit / SERVER_CERT}", fix="re-provision the kit"
        )
    public_ctx = (kit / CKKS_PUBLIC).read_bytes()
    _check_ckks(kit / CKKS_PUBLIC, public_ctx, common["ckks_fingerprint"], private=False)
    try:
        authorized = json.loads((kit / AUTHORIZED_NODES).read_text(encoding="utf-8"))
        if not isinstance(authorized, dict):
            raise ValueError("not a JSON object")
        for node_id, key in authorized.items():
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
        ckks_public_path=kit / CKKS_PUBLIC,
        authorized_nodes_path=kit / AUTHORIZED_NODES,
        authorized_nodes=dict(authorized),
        ckks_public_context=public_ctx,
    )


def load_gateway_kit(path: Path | str) -> GatewayKit:
    """Load and verify the query gateway's kit.

    Checks the manifest hashes and that the DCPE keyring loads (mode 0600) and belongs to
    the kit's consortium.

    Raises:
        ProvisioningError: Naming the missing, altered or invalid file.
    """
    kit, content = _read_manifest(Path(path), "gateway")
    _verify_files(kit, content, _GATEWAY_FILES, _GATEWAY_SECRETS)
    consortium_id, node_ids = content.get("consortium_id"), content.get("node_ids")
    if (
        not isinstance(consortium_id, str)
        or not isinstance(node_ids, list)
        or not all(isinstance(n, str) and _NODE_ID.fullmatch(n) for n in node_ids)
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
    )
