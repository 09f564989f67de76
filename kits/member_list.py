"""A member takes the consortium's current authorised list, pinned by its SHA-256.

Each member checks signed CKKS contributions and key-ceremony bundles against its own
kit's ``authorized_nodes.json`` (:mod:`federation.contributions`), never against a list
the coordinator sends. After an enrolment or a revocation
(:mod:`kits.enrolment`) the consortium admin prints the new list's SHA-256; each member
takes the coordinator kit's new list with :func:`accept_member_list` (CLI
``fedembed node accept-members``) only when its digest matches the one it received out of
band, as it pinned ``authorized_nodes_sha256`` at provisioning. Until then it refuses a
contribution set that holds a member enrolled after it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from embedding_core.atomic_file import atomic_write_bytes
from kits.layout import (
    AUTHORIZED_NODES,
    MANIFEST,
    ProvisioningError,
    sha256_file,
    validate_node_ids,
)
from kits.loader import load_node_kit
from kits.node_keys import validate_member_keys

__all__ = ["accept_member_list"]

logger = logging.getLogger(__name__)


def accept_member_list(kit: Path | str, authorized_nodes: Path | str, *, sha256: str) -> str:
    """Replace a member kit's authorised list with the consortium's current one.

    The member accepts the list only if its SHA-256 is ``sha256``, the digest the
    consortium admin printed at the enrolment or revocation and the member received out
    of band (as it pinned ``authorized_nodes_sha256`` at provisioning), and only if the
    list still holds this member's own key under its name. ``kit.json`` gains the new
    hash; the kit is restored if the result does not load.

    Returns:
        The accepted list's SHA-256.

    Raises:
        ProvisioningError: Another digest, a malformed list, or a list without this
            member's own key (the kit is unchanged).
    """
    node = load_node_kit(kit)
    source = Path(authorized_nodes).expanduser()
    try:
        data = source.read_bytes()
        listed = json.loads(data)
    except (OSError, ValueError) as err:
        raise ProvisioningError(
            f"{source} cannot be read as an authorised node list ({err})",
            expected="the coordinator kit's authorized_nodes.json",
            fix="ask the consortium admin for the file",
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256.strip().lower():
        raise ProvisioningError(
            f"{source} has SHA-256 {digest}, not the pinned {sha256.strip()}",
            expected="the list whose digest the consortium admin gave you out of band",
            fix="compare the digest with the admin again; never accept an unpinned list",
        )
    if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
        raise ProvisioningError(
            f"{source} is not an authorised node list",
            expected="a JSON object: node id -> OpenSSH EC P-384 public key",
            fix="ask the consortium admin for the coordinator kit's authorized_nodes.json",
        )
    ids = validate_node_ids(list(listed))
    keys = validate_member_keys(listed, ids)
    own = validate_member_keys({node.node_id: node.auth_public_key}, (node.node_id,))
    if keys.get(node.node_id) != own[node.node_id]:
        raise ProvisioningError(
            f"{source} does not hold this member's own key under {node.node_id!r}",
            expected="the consortium's list with this member on it, key unchanged",
            fix="ask the consortium admin; do not accept a list that drops or replaces you",
        )
    manifest = node.path / MANIFEST
    raw_manifest, raw_list = manifest.read_bytes(), node.authorized_nodes_path.read_bytes()
    content: dict[str, Any] = json.loads(raw_manifest)
    try:
        atomic_write_bytes(node.authorized_nodes_path, data, mode=0o644)
        content["files"] = {**content["files"], AUTHORIZED_NODES: digest}
        text = json.dumps(content, indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(manifest, text.encode("utf-8"), mode=0o644)
        load_node_kit(node.path)
    except BaseException:
        atomic_write_bytes(node.authorized_nodes_path, raw_list, mode=0o644)
        atomic_write_bytes(manifest, raw_manifest, mode=0o644)
        raise
    logger.info("member list: list accepted (%d authorised)", len(keys))
    return sha256_file(node.authorized_nodes_path)
