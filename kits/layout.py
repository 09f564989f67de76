"""Kit layout and kit types: what provisioning writes and what each party loads.

File names, the kit format tag, the errors, and the loaded views of the node, coordinator
and gateway kits (see :mod:`kits.provisioning` for the layout).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from crypto.ckks_parameters import CkksParameters
from embedding_core.errors import FedembedError

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
    "sha256_file",
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

# CKKS_PUBLIC (coordinator) and CKKS_SECRET (nodes) join a kit at the member-side key
# ceremony (kits.ckks_ceremony); provisioning writes neither.
COORDINATOR_FILES: Final = (CA_CERT, SERVER_CERT, SERVER_KEY, AUTHORIZED_NODES)
COORDINATOR_SECRETS: Final = (SERVER_KEY,)
# AUTH_KEY is listed in kit.json only when provisioning made it; a member that made its
# own (kits.node_keys) adds it unlisted. The loader always checks it against AUTH_PUB.
NODE_FILES: Final = (CA_CERT, AUTH_PUB, DCPE_KEYRING, AUTHORIZED_NODES)
# Secret files are refused, before anything reads them, when group or others may access
# them or another user owns them (crypto.secret_files).
NODE_SECRETS: Final = (AUTH_KEY, DCPE_KEYRING)
CKKS_SEARCH_KEY: Final = "ckks_search.key"
SEARCH_DIMENSION: Final = 384  # the shared model's width (all-MiniLM-L6-v2)
GATEWAY_FILES: Final = (DCPE_KEYRING, CKKS_SEARCH_KEY)
GATEWAY_SECRETS: Final = (CKKS_SEARCH_KEY, DCPE_KEYRING)
PARTS: Final = ("admin", "coordinator", "gateway", "nodes")

NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_NODE_ID_MAX = 64


class ProvisioningError(FedembedError):
    """Provisioning input is invalid, or a kit is missing, corrupt or altered."""


class KitPermissionWarning(UserWarning):
    """A secret file of a kit is readable by its group or by other users.

    The kit loaders no longer warn: they refuse such a file with a
    :class:`ProvisioningError` (see :mod:`crypto.secret_files`).
    """


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

    Provisioning makes no CKKS key pair: a member makes it in the key ceremony
    (:mod:`kits.ckks_ceremony`).
    """

    out_dir: Path
    admin_dir: Path
    coordinator_dir: Path
    gateway_dir: Path
    node_dirs: Mapping[str, Path]
    consortium_id: str
    ca_fingerprint: str


_NODE_CEREMONY_FIX: Final = (
    "on the key-holding member run `fedembed node ckks-keygen --kit KIT --out BUNDLES`, "
    "then on every other member `fedembed node ckks-install --kit KIT --bundle FILE` "
    "(docs/key_custody.md)"
)


@dataclass(frozen=True)
class NodeKit:
    """A member node's verified kit (secret contents are left out of ``repr``).

    ``ckks_fingerprint``, ``ckks_secret_path`` and ``ckks_secret`` are ``None`` until the
    key ceremony installed the CKKS secret context; :attr:`ckks_secret_context` refuses
    CKKS aggregation until then. ``authorized_nodes`` (node id -> OpenSSH public key) is
    the consortium's authorised node list as the node's own kit has it: a node checks
    signed contributions and key-ceremony bundles against it, never against a list the
    coordinator sends.
    """

    path: Path
    node_id: str
    consortium_id: str
    created: str
    superlink_host: str
    ckks_parameters: CkksParameters
    ckks_fingerprint: str | None
    ca_fingerprint: str
    ca_cert_path: Path
    auth_key_path: Path
    auth_pub_path: Path
    ckks_secret_path: Path | None
    dcpe_keyring_path: Path
    auth_public_key: str
    authorized_nodes_path: Path
    authorized_nodes: Mapping[str, str]
    ckks_secret: bytes | None = field(repr=False)

    @property
    def ckks_secret_context(self) -> bytes:
        """The CKKS secret context (refused before the key ceremony installed it)."""
        if self.ckks_secret is None:
            raise ProvisioningError(
                f"the node kit {self.path} holds no CKKS secret context yet",
                expected="a node kit that went through the member-side CKKS key ceremony",
                fix=_NODE_CEREMONY_FIX,
            )
        return self.ckks_secret

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
    """The coordinator's verified kit: TLS server identity and public CKKS context.

    ``ckks_fingerprint``, ``ckks_public_path`` and ``ckks_public`` are ``None`` until the
    key holder's public bundle is installed; :attr:`ckks_public_context` refuses CKKS
    aggregation until then.
    """

    path: Path
    consortium_id: str
    created: str
    superlink_host: str
    node_ids: tuple[str, ...]
    ckks_parameters: CkksParameters
    ckks_fingerprint: str | None
    ca_fingerprint: str
    ca_cert_path: Path
    server_cert_path: Path
    server_key_path: Path
    ckks_public_path: Path | None
    authorized_nodes_path: Path
    authorized_nodes: Mapping[str, str]
    ckks_public: bytes | None = field(repr=False)

    @property
    def ckks_public_context(self) -> bytes:
        """The CKKS public context (refused before the key ceremony installed it)."""
        if self.ckks_public is None:
            raise ProvisioningError(
                f"the coordinator kit {self.path} holds no CKKS public context yet",
                expected="the public context the key-holding member signed",
                fix="have the key holder run `fedembed node ckks-keygen` (see "
                "docs/key_custody.md), then run `fedembed coordinator ckks-install-public "
                "--kit KIT --public ckks_public.bundle.json`",
            )
        return self.ckks_public

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
    """The query gateway's verified kit: the DCPE keyring and the CKKS search key.

    Load them with ``DcpeKeyring.load(kit.dcpe_keyring_path)`` and
    ``load_ckks_key(kit.ckks_search_key_path)``.
    """

    path: Path
    consortium_id: str
    node_ids: tuple[str, ...]
    dcpe_keyring_path: Path
    ckks_search_key_path: Path


def sha256_file(path: Path) -> str:
    """The SHA-256 of a kit file, as ``kit.json`` records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        if not NODE_ID_PATTERN.fullmatch(node_id) or len(node_id) > _NODE_ID_MAX:
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
