"""SuperNodes through Flower's CLI against a real TLS SuperLink (deployment.flower_nodes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployment.flower_nodes import (
    SuperLinkUnreachableError,
    SuperNodeKeyInUseError,
    SuperNodeNotFoundError,
    list_supernodes,
    register_node_key,
    unregister_supernode,
)
from deployment.flower_processes import free_port, start_superlink, write_flwr_connection
from kits.loader import load_coordinator_kit
from kits.provisioning import provision

CONNECTION = "test-link"


@dataclass
class Link:
    kits: Path
    flwr_home: Path


@pytest.fixture(scope="module")
def link(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Link]:
    """A provisioned consortium's SuperLink with a `flwr` connection to it."""
    root = tmp_path_factory.mktemp("flower-nodes")
    provision(root / "kits", node_ids=["node-a", "node-b"])
    coordinator = load_coordinator_kit(root / "kits" / "coordinator")
    superlink = start_superlink(coordinator_kit=coordinator, state_dir=root / "superlink")
    flwr_home = root / "flwr-home"
    write_flwr_connection(
        flwr_home, CONNECTION, address=superlink.extra["address"], ca_cert=coordinator.ca_cert_path
    )
    try:
        yield Link(root / "kits", flwr_home)
    finally:
        superlink.stop()


def test_register_list_and_unregister_a_supernode(link: Link) -> None:
    # Prepare
    key = link.kits / "nodes" / "node-a" / "auth.pub"
    # Execute
    node_id = register_node_key(
        public_key=key, name="node-a", connection=CONNECTION, flwr_home=link.flwr_home
    )
    listed = {n.node_id: n for n in list_supernodes(CONNECTION, link.flwr_home)}
    with pytest.raises(SuperNodeKeyInUseError):
        register_node_key(
            public_key=key, name="node-a", connection=CONNECTION, flwr_home=link.flwr_home
        )
    unregister_supernode(node_id, CONNECTION, link.flwr_home)
    after = {n.node_id: n for n in list_supernodes(CONNECTION, link.flwr_home)}
    # Assert: registered but never connected; then unregistered, and gone for good
    assert listed[node_id].status == "registered"
    assert listed[node_id].online is False
    assert listed[node_id].last_seen is None
    assert listed[node_id].registered_at is not None
    assert after[node_id].status == "unregistered"
    assert after[node_id].unregistered_at is not None
    with pytest.raises(SuperNodeNotFoundError):
        unregister_supernode(node_id, CONNECTION, link.flwr_home)


def test_an_unreachable_superlink_or_unknown_connection_is_a_clear_error(
    link: Link, tmp_path: Path
) -> None:
    # Prepare: a connection to a port nothing listens on
    home = tmp_path / "flwr-home"
    write_flwr_connection(
        home,
        "down",
        address=f"127.0.0.1:{free_port()}",
        ca_cert=link.kits / "coordinator" / "ca.crt",
    )
    # Execute / Assert
    with pytest.raises(SuperLinkUnreachableError) as down:
        list_supernodes("down", home)
    assert "fedembed coordinator superlink" in down.value.fix
    with pytest.raises(SuperLinkUnreachableError, match="cannot be reached"):
        list_supernodes("no-such-connection", link.flwr_home)
