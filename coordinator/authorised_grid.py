"""Only kit-authorised SuperNodes take part: a Flower ``Grid`` that hides every other node.

Flower's SecAgg+ workflow (legacy API) samples every node the grid reports and carries no
signature of ours, so the consortium's authorised node list is enforced on the grid
instead. On the deployment engine the SuperLink reports each SuperNode's registered
public key (``Grid.get_nodes()`` -> ``NodeInfo.public_key``, PEM SubjectPublicKeyInfo as
``flwr supernode register`` and the Fleet API store it) and, with SuperNode
authentication, accepts a node's requests only when they are signed by that key.
:class:`AuthorisedNodesGrid` reports only nodes whose key is on the coordinator kit's
list (OpenSSH keys; both sides compared as SubjectPublicKeyInfo DER), drops every
message addressed to another node, and keeps each exclusion, with its reason, for the
federation ledger (:meth:`AuthorisedNodesGrid.take_exclusions`).

Flower's simulation engine registers virtual nodes with random bytes, not keys: there
enrolment cannot be checked, so a run config that names a coordinator kit is refused on
it rather than run unchecked (:func:`authorised_grid`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.app import Message
from flwr.proto.node_pb2 import NodeInfo
from flwr.serverapp import Grid

from coordinator.delegating_grid import DelegatingGrid
from embedding_core.errors import FedembedError
from kits.loader import load_coordinator_kit

__all__ = ["AuthorisedNodesGrid", "authorised_grid", "canonical_key", "unverifiable_enrolment"]

logger = logging.getLogger(__name__)

NOT_AUTHORISED = "its registered public key is not in the coordinator kit's authorized_nodes.json"
NO_KEY = "it registered no EC public key"
DUPLICATE = "another SuperNode already takes part with the same authorised key"


def canonical_key(key: bytes | str) -> bytes | None:
    """SubjectPublicKeyInfo DER of an EC public key given as PEM, DER or OpenSSH; else None."""
    data = key.encode("ascii", errors="replace") if isinstance(key, str) else bytes(key)
    loaders = (
        serialization.load_pem_public_key,
        serialization.load_der_public_key,
        serialization.load_ssh_public_key,
    )
    for load in loaders:
        try:
            public = load(data.strip())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        if not isinstance(public, ec.EllipticCurvePublicKey):
            return None
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return None


def unverifiable_enrolment(problem: str) -> FedembedError:
    """The refusal of a run config with a coordinator kit on an engine without node keys."""
    return FedembedError(
        f"{problem}: node enrolment cannot be checked against the coordinator kit on this "
        "engine (Flower's simulation engine registers no node keys)",
        expected="the deployment engine, SuperNodes started with "
        "--auth-supernode-private-key and registered with their kit's auth.pub",
        fix="run on the deployment engine, or leave coordinator-kit out of the run config "
        "of a simulation (then every simulated node takes part)",
    )


class AuthorisedNodesGrid(DelegatingGrid):
    """Delegate to ``grid``, reporting and messaging only kit-authorised nodes.

    Args:
        grid: The grid Flower handed the ServerApp.
        authorized_nodes: The coordinator kit's authorised node list (kit node id ->
            OpenSSH EC public key).

    Raises:
        FedembedError: ``authorized_nodes`` holds no EC public key; or (when listing
            nodes) the grid reports connected nodes but no public key for any of them.
    """

    def __init__(self, grid: Grid, authorized_nodes: Mapping[str, str]) -> None:
        super().__init__(grid)
        self._names: dict[bytes, str] = {}
        for name, key in authorized_nodes.items():
            canonical = canonical_key(key)
            if canonical is not None:
                self._names[canonical] = name
        if not self._names:
            raise FedembedError(
                "the coordinator kit authorises no node key",
                expected="authorized_nodes.json naming each member's OpenSSH EC public key",
                fix="re-provision the consortium (fedembed coordinator provision)",
            )
        self._lock = threading.Lock()
        self._admitted: dict[int, str] = {}
        self._excluded: dict[int, str] = {}
        self._logged: set[int] = set()

    @property
    def admitted(self) -> dict[int, str]:
        """Flower node id -> kit node id of the nodes admitted at the latest listing."""
        with self._lock:
            return dict(self._admitted)

    def take_exclusions(self) -> dict[int, str]:
        """Flower node id -> reason, for every node excluded since the last call."""
        with self._lock:
            excluded, self._excluded = self._excluded, {}
        return excluded

    def _exclude(self, node_id: int, reason: str) -> None:
        with self._lock:
            self._excluded[node_id] = reason
            first = node_id not in self._logged
            self._logged.add(node_id)
        if first:
            logger.warning("enrolment: node=%d refused: %s", node_id, reason)

    def _screen(self) -> list[NodeInfo]:
        """The wrapped grid's nodes whose registered key is authorised."""
        nodes = list(self.grid.get_nodes())
        keys = [canonical_key(info.public_key) for info in nodes]
        if nodes and all(key is None for key in keys):
            raise unverifiable_enrolment(
                f"the grid reports {len(nodes)} connected node(s) but no public key"
            )
        admitted: dict[int, str] = {}
        kept: list[NodeInfo] = []
        for info, key in zip(nodes, keys, strict=True):
            name = self._names.get(key) if key is not None else None
            if name is None:
                self._exclude(info.node_id, NOT_AUTHORISED if key is not None else NO_KEY)
            elif name in admitted.values():
                self._exclude(info.node_id, DUPLICATE)
            else:
                admitted[info.node_id] = name
                kept.append(info)
        with self._lock:
            self._admitted = admitted
        return kept

    def _admit(self, messages: Iterable[Message]) -> list[Message]:
        """The messages addressed to admitted nodes; every other one is dropped."""
        messages = list(messages)
        admitted = self.admitted
        if any(m.metadata.dst_node_id not in admitted for m in messages):
            admitted = {info.node_id: "" for info in self._screen()}
        kept = []
        for message in messages:
            if message.metadata.dst_node_id in admitted:
                kept.append(message)
            else:
                self._exclude(message.metadata.dst_node_id, f"message not sent: {NOT_AUTHORISED}")
        return kept

    def get_node_ids(self) -> Iterable[int]:
        """The ids of the connected nodes whose registered key is authorised."""
        return [info.node_id for info in self._screen()]

    def get_nodes(self) -> Iterable[NodeInfo]:
        """The connected nodes whose registered key is authorised."""
        return self._screen()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Push the messages addressed to authorised nodes; drop (and record) the rest."""
        return self.grid.push_messages(self._admit(messages))

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Send to authorised nodes only; a dropped message gets no reply (a dropout)."""
        return self.grid.send_and_receive(self._admit(messages), timeout=timeout)


def authorised_grid(grid: Grid, coordinator_kit: str) -> Grid:
    """``grid`` restricted to the kit's authorised nodes, or unchanged without a kit."""
    if not coordinator_kit:
        logger.warning(
            "enrolment: no coordinator-kit in the run config; node keys are not checked "
            "against an authorised list and every connected node takes part"
        )
        return grid
    kit = load_coordinator_kit(coordinator_kit)
    return AuthorisedNodesGrid(grid, kit.authorized_nodes)
