"""The SuperLink's SuperNodes through Flower's own CLI: list, register, unregister.

Wraps ``flwr supernode list|register|unregister CONNECTION --format json`` (Flower 1.42)
over :func:`deployment.flower_processes.flwr_command`. In JSON mode ``flwr`` exits 0
even when it fails and prints ``{"success": false, "error-message": ...}``; each failure
becomes a :class:`FedembedError` subclass: :class:`SuperLinkUnreachableError` (nothing
answers, or the connection is not in ``FLWR_HOME/config.toml``),
:class:`SuperNodeKeyInUseError` (the SuperLink already holds the key: it keeps the keys
of unregistered nodes too) and :class:`SuperNodeNotFoundError`.

``flwr supernode list --format json`` reports per node: ``node-id``, ``owner-name``,
``status`` (``registered``: never connected; ``online``; ``offline``; ``unregistered``),
``created-at``, ``online-at``, ``online-elapsed``, ``offline-at`` and ``deleted-at``
(``"N/A"`` when unset). It does not report the node's public key or name: the key ->
node id binding is what :func:`register_node_key` returns when it registers a key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from deployment.flower_processes import flwr_command
from embedding_core.errors import FedembedError

__all__ = [
    "SuperLinkUnreachableError",
    "SuperNodeInfo",
    "SuperNodeKeyInUseError",
    "SuperNodeNotFoundError",
    "list_supernodes",
    "register_node_key",
    "unregister_supernode",
]

logger = logging.getLogger(__name__)

STATUSES: Final = ("registered", "online", "offline", "unregistered")
_KEY_IN_USE: Final = "[code: 23]"
_NOT_FOUND: Final = "[code: 24]"
_UNREACHABLE: Final = (
    "unavailable",
    "not found in the flower configuration file",
    "connection refused",
    "failed to connect",
)


class SuperLinkUnreachableError(FedembedError):
    """The SuperLink's Control API cannot be reached through the named connection."""


class SuperNodeKeyInUseError(FedembedError):
    """The SuperLink already holds this public key (registered, or once registered)."""


class SuperNodeNotFoundError(FedembedError):
    """The SuperLink knows no (registered) SuperNode with this node id."""


@dataclass(frozen=True)
class SuperNodeInfo:
    """One SuperNode as ``flwr supernode list`` reports it (times UTC, None when unset).

    Attributes:
        node_id: Flower's node id.
        owner: The account that registered it (``none`` without account auth).
        status: ``registered``, ``online``, ``offline`` or ``unregistered``.
        registered_at: When its key was registered.
        online_at: When it last came online.
        offline_at: When it last went offline.
        unregistered_at: When it was unregistered.
        online_seconds: How long it has been online (0 when not online).
    """

    node_id: int
    owner: str
    status: str
    registered_at: str | None
    online_at: str | None
    offline_at: str | None
    unregistered_at: str | None
    online_seconds: float

    @property
    def online(self) -> bool:
        """Whether the SuperNode is connected now."""
        return self.status == "online"

    @property
    def last_seen(self) -> str | None:
        """When it was last connected: now-ish if online, else when it went offline."""
        if self.online:
            return self.online_at
        return self.offline_at or self.online_at

    def as_dict(self) -> dict[str, Any]:
        """The node as JSON (node id as a string: it exceeds JavaScript's integers)."""
        return {
            "node_id": str(self.node_id),
            "owner": self.owner,
            "status": self.status,
            "online": self.online,
            "last_seen": self.last_seen,
            "registered_at": self.registered_at,
            "unregistered_at": self.unregistered_at,
        }


def _time(value: object) -> str | None:
    return None if value in (None, "", "N/A") else str(value)


def _unreachable(connection: str, message: str) -> SuperLinkUnreachableError:
    return SuperLinkUnreachableError(
        f"the SuperLink of connection {connection!r} cannot be reached ({message.strip()})",
        expected="a running SuperLink whose Control API the connection's address names",
        fix="start the SuperLink (`fedembed coordinator superlink`) and check the "
        f"[superlink.{connection}] block of FLWR_HOME/config.toml (address, root-certificates)",
    )


def _flwr_json(args: list[str], *, connection: str, flwr_home: Path, what: str) -> dict[str, Any]:
    """Run ``flwr ARGS --format json`` and return its answer, or raise a classified error."""
    result = flwr_command([*args, "--format", "json"], flwr_home=flwr_home, timeout=60.0)
    text = result.stdout.strip()
    try:
        answer = json.loads(text[text.index("{") :]) if "{" in text else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        message = (result.stdout + result.stderr).strip()[-500:] or f"exit {result.returncode}"
        if any(marker in message.lower() for marker in _UNREACHABLE):
            raise _unreachable(connection, message)
        raise FedembedError(
            f"`flwr {what}` gave no JSON answer ({message})",
            expected="Flower 1.42's `flwr` CLI",
            fix="check the installed flwr version and FLWR_HOME/config.toml",
        )
    if answer.get("success") is True:
        return answer
    message = str(answer.get("error-message", "")).strip()
    if any(marker in message.lower() for marker in _UNREACHABLE):
        raise _unreachable(connection, message.splitlines()[-1] if message else "")
    if "configuration file" in message.lower():
        raise FedembedError(
            f"`flwr {what}` cannot use FLWR_HOME/config.toml ({message.splitlines()[-1]})",
            expected=f"a [superlink.{connection}] block with an address and an absolute "
            "root-certificates path",
            fix=f"correct or remove the [superlink.{connection}] block of "
            f"{flwr_home / 'config.toml'}",
        )
    if _KEY_IN_USE in message:
        raise SuperNodeKeyInUseError(
            "the SuperLink already holds this public key",
            expected="a key the SuperLink has never registered (it keeps the keys of "
            "unregistered nodes too)",
            fix="list the SuperNodes to find its node id; a re-enrolled member needs a new "
            "key pair (`fedembed node keygen`)",
        )
    if _NOT_FOUND in message:
        raise SuperNodeNotFoundError(
            "the SuperLink has no registered SuperNode with this node id",
            expected="the node id of a registered SuperNode",
            fix="list the SuperNodes (`flwr supernode list`) and use a node id from it",
        )
    raise FedembedError(
        f"`flwr {what}` failed ({message.splitlines()[-1] if message else 'no message'})",
        expected="a SuperLink that accepts the request",
        fix="see the SuperLink's log",
    )


def list_supernodes(connection: str, flwr_home: Path) -> list[SuperNodeInfo]:
    """Every SuperNode the SuperLink knows, unregistered ones included, oldest first.

    Raises:
        SuperLinkUnreachableError: Nothing answers through ``connection``.
    """
    answer = _flwr_json(
        ["supernode", "list", connection],
        connection=connection,
        flwr_home=flwr_home,
        what="supernode list",
    )
    nodes: list[SuperNodeInfo] = []
    for entry in answer.get("nodes", []):
        try:
            nodes.append(
                SuperNodeInfo(
                    node_id=int(entry["node-id"]),
                    owner=str(entry.get("owner-name", "")),
                    status=str(entry["status"]),
                    registered_at=_time(entry.get("created-at")),
                    online_at=_time(entry.get("online-at")),
                    offline_at=_time(entry.get("offline-at")),
                    unregistered_at=_time(entry.get("deleted-at")),
                    online_seconds=float(entry.get("online-elapsed") or 0.0),
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise FedembedError(
                f"`flwr supernode list` reported a node without {err}",
                expected="node-id and status for every node (Flower 1.42)",
                fix="check the installed flwr version",
            ) from None
    return nodes


def register_node_key(*, public_key: Path, name: str, connection: str, flwr_home: Path) -> int:
    """Register a SuperNode's OpenSSH public key; returns the node id the SuperLink gave it.

    Raises:
        SuperNodeKeyInUseError: The SuperLink already holds this key.
        SuperLinkUnreachableError: Nothing answers through ``connection``.
    """
    answer = _flwr_json(
        ["supernode", "register", str(public_key), connection, "--name", name],
        connection=connection,
        flwr_home=flwr_home,
        what="supernode register",
    )
    node_id = int(answer["node-id"])
    logger.info("superlink: registered one SuperNode key")
    return node_id


def unregister_supernode(node_id: int, connection: str, flwr_home: Path) -> None:
    """Unregister a SuperNode (``flwr supernode unregister``): the SuperLink refuses it.

    Raises:
        SuperNodeNotFoundError: No registered SuperNode has this id (or it is gone).
        SuperLinkUnreachableError: Nothing answers through ``connection``.
    """
    _flwr_json(
        ["supernode", "unregister", str(int(node_id)), connection],
        connection=connection,
        flwr_home=flwr_home,
        what="supernode unregister",
    )
    logger.info("superlink: unregistered one SuperNode")
