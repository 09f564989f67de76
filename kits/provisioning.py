"""Consortium provisioning: one admin step writes every party's key material.

``provision(out_dir, node_ids=[...])`` creates (like NVIDIA FLARE's ``provision``)::

    out_dir/
      admin/                 kept by the consortium admin, never shipped
        ca.key  ca.crt       self-signed root CA (EC P-384); ca.key is mode 0600
      coordinator/           shipped to the coordinator (SuperLink + ServerApp)
        ca.crt  server.crt  server.key  authorized_nodes.json  kit.json
        (+ ckks_public.ctx, installed from the key holder's signed bundle)
      gateway/               shipped to the query gateway (secure index service)
        dcpe_keyring.json  ckks_search.key  kit.json
      nodes/<node_id>/       shipped to one member organisation (SuperNode + ClientApp)
        ca.crt  auth.key  auth.pub  dcpe_keyring.json  authorized_nodes.json  kit.json
        (+ ckks_secret.ctx, made or installed in the member-side key ceremony)

Provisioning writes no CKKS key pair: the consortium's CKKS parameters go into every
manifest, and one member makes the key pair on its premises
(:mod:`kits.ckks_ceremony`; ``fedembed node ckks-keygen``), seals the secret context
to every other member's kit key and signs the coordinator's public context, so neither
the provisioner nor the coordinator's operator ever holds a CKKS secret
(docs/key_custody.md). The coordinator kit holds no secret that decrypts member data:
its CKKS context carries the public key only, and it holds no DCPE key. Every node kit
holds its own SuperNode authentication key and the
consortium's one DCPE keyring (:class:`~crypto.dcpe_keys.DcpeKeyring`,
tenant = consortium id): distance-comparison-preserving encryption (Fuchsbauer et al.,
SCN 2022) only keeps ciphertext distances meaningful between vectors encrypted under the
same key, so every node uploading to a collection and the gateway encrypting queries
share it. The gateway kit holds that DCPE query key and the CKKS search key (the secret
of CKKS collections, :mod:`crypto.ckks_search`: nodes fetch its public
context from the gateway, the store gets only evaluation keys): whoever runs the gateway
can decrypt every node's DCPE- or CKKS-encrypted vectors, so it must be trusted with the
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
corrupt file is refused with its name) and refuse a secret file that group or others may
access or another user owns (:mod:`crypto.secret_files`). The hashes catch corruption and accidental
edits, not an attacker who can rewrite the whole kit.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.ckks_aggregation import CkksParameters
from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
from crypto.dcpe import BETA_MAX
from crypto.dcpe_keys import DcpeKeyring
from crypto.errors import KeyManagementError
from crypto.secret_files import read_secret_file
from kits.certificates import (
    cert_fingerprint,
    make_ca,
    make_server_cert,
    pem_cert,
    pem_private,
    validate_host,
)
from kits.layout import (
    AUTH_KEY,
    AUTH_PUB,
    AUTHORIZED_NODES,
    CA_CERT,
    CA_KEY,
    CKKS_SEARCH_KEY,
    COORDINATOR_FILES,
    DCPE_KEY_SCOPE,
    DCPE_KEYRING,
    DEFAULT_DCPE_BETA,
    GATEWAY_FILES,
    KIT_FORMAT,
    MANIFEST,
    NODE_FILES,
    PARTS,
    SEARCH_DIMENSION,
    SERVER_CERT,
    SERVER_KEY,
    CoordinatorKit,
    GatewayKit,
    KitPermissionWarning,
    NodeKit,
    ProvisioningError,
    ProvisionResult,
    sha256_file,
    validate_node_ids,
)
from kits.loader import load_coordinator_kit, load_gateway_kit, load_node_kit
from kits.node_keys import validate_member_keys

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
    "authorized_nodes_bytes",
    "load_coordinator_kit",
    "load_gateway_kit",
    "load_node_kit",
    "make_kit_dir",
    "manifest_bytes",
    "provision",
    "validate_node_ids",
    "write_kit_file",
    "write_manifest",
]

# -- writing -------------------------------------------------------------------------------


def write_kit_file(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Create ``path`` (never overwrite); secrets are 0600 from the first byte."""
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have removed bits from a public file


def make_kit_dir(path: Path) -> Path:
    """Create a kit folder (mode 0700, parents included; never an existing one)."""
    path.mkdir(mode=0o700, parents=True)
    os.chmod(path, 0o700)
    return path


def manifest_bytes(directory: Path, content: Mapping[str, Any], files: Sequence[str]) -> bytes:
    """``kit.json`` for ``directory``: ``content`` plus the SHA-256 of each of ``files``."""
    content = {**content, "files": {name: sha256_file(directory / name) for name in files}}
    return (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()


def authorized_nodes_bytes(authorized: Mapping[str, str]) -> bytes:
    """``authorized_nodes.json``: node id -> OpenSSH public key, as every kit holds it."""
    return (json.dumps(dict(authorized), indent=2, sort_keys=True) + "\n").encode()


def write_manifest(directory: Path, content: dict[str, Any], files: Sequence[str]) -> None:
    """Create ``directory/kit.json`` (never overwrite) listing ``files`` with their hashes."""
    write_kit_file(directory / MANIFEST, manifest_bytes(directory, content, files))


def provision(
    out_dir: Path | str,
    *,
    node_ids: Sequence[str],
    superlink_host: str = "127.0.0.1",
    ckks: CkksParameters | None = None,
    validity_days: int = 365,
    dcpe_beta: float = DEFAULT_DCPE_BETA,
    force: bool = False,
    node_keys: Mapping[str, str] | None = None,
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
        node_keys: Node id -> the OpenSSH P-384 public key the member made on its own
            premises (:func:`kits.node_keys.generate_auth_key`); such a kit gets no
            ``auth.key`` (the member installs its own), so the provisioner never holds
            it. Nodes not named here get a key made by provisioning.
        force: Replace the ``admin``, ``coordinator``, ``gateway`` and ``nodes`` folders
            of an existing ``out_dir`` (other files in it are left alone).

    Returns:
        Where everything was written, with the CA fingerprint (no CKKS key pair: see
        :func:`kits.ckks_ceremony.run_ckks_ceremony`).

    Raises:
        ProvisioningError: Invalid input, or ``out_dir`` is in use and ``force`` is off.
    """
    ids = validate_node_ids(node_ids)
    member_keys = validate_member_keys(node_keys or {}, ids)
    host_name = validate_host(superlink_host)
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
            staging,
            out,
            ids,
            superlink_host,
            host_name,
            params,
            validity_days,
            dcpe_beta,
            member_keys,
        )
        if not out.exists():
            staging.rename(out)
        else:
            for part in PARTS:
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
    member_keys: Mapping[str, str],
) -> ProvisionResult:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    created = now.isoformat().replace("+00:00", "Z")
    consortium_id = uuid.uuid4().hex

    ca_key, ca_cert = make_ca(consortium_id, now, days)
    ca_pem = pem_cert(ca_cert)
    ca_fingerprint = cert_fingerprint(ca_cert)
    admin = make_kit_dir(staging / "admin")
    write_kit_file(admin / CA_KEY, pem_private(ca_key), secret=True)
    write_kit_file(admin / CA_CERT, ca_pem)

    common = {
        "format": KIT_FORMAT,
        "consortium_id": consortium_id,
        "created": created,
        "superlink_host": host,
        "ckks": params.as_dict(),
        "ckks_fingerprint": None,  # set by the member-side key ceremony (kits.ckks_ceremony)
        "ca_fingerprint_sha256": ca_fingerprint,
    }

    gateway = make_kit_dir(staging / "gateway")
    try:
        DcpeKeyring.create(gateway / DCPE_KEYRING, tenant=consortium_id, beta=dcpe_beta)
    except KeyManagementError as err:
        raise ProvisioningError(
            f"the consortium DCPE keyring cannot be created ({err.problem})",
            expected=err.expected,
            fix=err.fix,
        ) from None
    keyring = read_secret_file(gateway / DCPE_KEYRING, what="DCPE keyring")
    save_ckks_key(CkksSearchKey.generate(dimension=SEARCH_DIMENSION), gateway / CKKS_SEARCH_KEY)
    write_manifest(
        gateway,
        {
            "format": KIT_FORMAT,
            "kind": "gateway",
            "consortium_id": consortium_id,
            "created": created,
            "node_ids": list(ids),
            "dcpe_key_scope": DCPE_KEY_SCOPE,
        },
        GATEWAY_FILES,
    )

    authorized: dict[str, str] = {}
    for node_id in ids:
        node = make_kit_dir(staging / "nodes" / node_id)
        write_kit_file(node / CA_CERT, ca_pem)
        if node_id in member_keys:  # the member made it and keeps auth.key (kits.node_keys)
            auth_pub = member_keys[node_id].encode("ascii")
        else:
            auth_key = ec.generate_private_key(ec.SECP384R1())
            auth_pub = auth_key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            write_kit_file(
                node / AUTH_KEY,
                auth_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.OpenSSH,
                    serialization.NoEncryption(),
                ),
                secret=True,
            )
        authorized[node_id] = auth_pub.decode("ascii")
        write_kit_file(node / AUTH_PUB, auth_pub + b"\n")
        write_kit_file(node / DCPE_KEYRING, keyring, secret=True)
    # Every node kit carries the consortium's authorised node list: a node checks signed
    # contributions (and key-ceremony bundles) against its own copy, not the coordinator's.
    authorized_json = authorized_nodes_bytes(authorized)
    for node_id in ids:
        node = staging / "nodes" / node_id
        write_kit_file(node / AUTHORIZED_NODES, authorized_json)
        write_manifest(
            node,
            {
                **common,
                "kind": "node",
                "node_id": node_id,
                "node_ids": [node_id],
                "dcpe_key_scope": DCPE_KEY_SCOPE,
                "auth_key_origin": "member" if node_id in member_keys else "provisioning",
            },
            NODE_FILES if node_id in member_keys else (AUTH_KEY, *NODE_FILES),
        )

    coordinator = make_kit_dir(staging / "coordinator")
    server_key, server_cert = make_server_cert(ca_key, ca_cert, host, host_name, now, days)
    write_kit_file(coordinator / CA_CERT, ca_pem)
    write_kit_file(coordinator / SERVER_CERT, pem_cert(server_cert))
    write_kit_file(coordinator / SERVER_KEY, pem_private(server_key), secret=True)
    write_kit_file(coordinator / AUTHORIZED_NODES, authorized_json)
    write_manifest(
        coordinator,
        {**common, "kind": "coordinator", "node_ids": list(ids)},
        COORDINATOR_FILES,
    )

    return ProvisionResult(
        out_dir=out,
        admin_dir=out / "admin",
        coordinator_dir=out / "coordinator",
        gateway_dir=out / "gateway",
        node_dirs={node_id: out / "nodes" / node_id for node_id in ids},
        consortium_id=consortium_id,
        ca_fingerprint=ca_fingerprint,
    )
