"""``/v1/members``: list, enrol, register and revoke members, against a real SuperLink."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from coordinator.admin.home import ConsortiumHome
from coordinator.admin.settings import AdminSettings
from coordinator.admin.superlink import control_api_listening
from coordinator.admin.tokens import AdminRole
from coordinator.cli import coordinator_app
from deployment.flower_processes import ManagedProcess, free_port, start_superlink
from kits.layout import sha256_file
from kits.loader import load_coordinator_kit
from kits.node_keys import generate_auth_key
from kits.provisioning import provision

MEMBERS = ["node-a", "node-b"]
NEW = "clinic-c"

Auth = dict[AdminRole, dict[str, str]]


@pytest.fixture
def control_port() -> int:
    return free_port()


@pytest.fixture
def admin_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, control_port: int
) -> AdminSettings:
    """A consortium home with provisioned kits; its SuperLink's Control API at control_port."""
    for variable in ("FEDEMBED_ADMIN_TRAIL_KEY", "FEDEMBED_ADMIN_METRICS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    home = tmp_path / "home"
    provision(home / "kits", node_ids=MEMBERS)
    return AdminSettings(home=home, port=0, superlink_control=f"127.0.0.1:{control_port}")


@pytest.fixture
def superlink(admin_home: ConsortiumHome, control_port: int) -> Iterator[ManagedProcess]:
    """The consortium's SuperLink (TLS, SuperNode auth) at the admin API's control address."""
    link = start_superlink(
        coordinator_kit=load_coordinator_kit(admin_home.coordinator_kit),
        state_dir=admin_home.root / "superlink",
        port=control_port,
    )
    try:
        yield link
    finally:
        link.stop()


def _members(client: TestClient, auth: Auth) -> dict[str, Any]:
    answer = client.get("/v1/members", headers=auth[AdminRole.AUDITOR])
    assert answer.status_code == 200, answer.text
    listed: dict[str, Any] = answer.json()
    return listed


def _trail_actions(home: ConsortiumHome) -> list[str]:
    lines = (home.state / "trail.jsonl").read_text().splitlines()
    return [json.loads(line)["action"] for line in lines]


def test_enrol_register_list_and_revoke_against_a_running_superlink(
    superlink: ManagedProcess,
    admin_client: TestClient,
    admin_auth: Auth,
    admin_home: ConsortiumHome,
    control_port: int,
    tmp_path: Path,
) -> None:
    # Prepare
    auth_pub = generate_auth_key(tmp_path / "member-key").read_text()
    admin = admin_auth[AdminRole.ADMIN]
    operator_home = tmp_path / "operator-flwr"
    cli_register = [
        "register",
        "--kits",
        str(admin_home.kits),
        "--name",
        "node-b",
        "--superlink-control",
        f"127.0.0.1:{control_port}",
        "--flwr-home",
        str(operator_home),
    ]
    # Execute
    before = admin_client.get("/v1/members", headers=admin_auth[AdminRole.AUDITOR])
    registered = admin_client.post("/v1/members/node-a/register", headers=admin)
    enrolled = admin_client.post(
        "/v1/members", json={"name": NEW, "auth_pub": auth_pub}, headers=admin
    )
    revoked = admin_client.post(f"/v1/members/{NEW}/revoke", headers=admin)
    by_hand = CliRunner().invoke(coordinator_app, cli_register)
    listing = _members(admin_client, admin_auth)
    after = {m["name"]: m for m in listing["members"]}
    one = admin_client.get("/v1/members/node-a", headers=admin_auth[AdminRole.AUDITOR])
    nobody = admin_client.get("/v1/members/nobody", headers=admin_auth[AdminRole.AUDITOR])
    # Assert: provisioned members are listed before the SuperLink knows them
    assert before.status_code == 200, before.text
    assert before.json()["superlink_reachable"] is True
    listed = {m["name"]: m for m in before.json()["members"]}
    assert set(listed) == set(MEMBERS)
    assert listed["node-a"]["state"] == "enrolled"
    assert listed["node-a"]["flower_node_id"] is None
    # a provisioned member's key is registered with the SuperLink, its node id recorded
    assert registered.status_code == 200, registered.text
    assert registered.json()["superlink"] == "registered"
    node_a = registered.json()["flower_node_id"]
    assert node_a is not None
    # the new member: a kit without a private key, registered with the SuperLink
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    kit = Path(body["kit"])
    assert kit == admin_home.kits / "nodes" / NEW
    assert (kit / "auth.pub").is_file()
    assert not (kit / "auth.key").exists()
    assert body["member"]["superlink"] == "registered"
    assert body["member"]["flower_node_id"] not in (None, node_a)
    assert body["ca_fingerprint"] == load_coordinator_kit(admin_home.coordinator_kit).ca_fingerprint
    # revoked: off the coordinator's list and unregistered from the SuperLink
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    assert revoked.json()["superlink"] == "unregistered"
    assert NEW not in load_coordinator_kit(admin_home.coordinator_kit).authorized_nodes
    assert after[NEW]["state"] == "revoked"
    assert after[NEW]["status"] == "unregistered"
    assert after[NEW]["flower_node_id"] == body["member"]["flower_node_id"]
    assert after["node-a"]["flower_node_id"] == node_a
    assert after["node-a"]["status"] == "registered"
    assert after["node-a"]["online"] is False
    assert one.status_code == 200, one.text
    assert one.json() == after["node-a"]  # one member: as the list shows it
    assert nobody.status_code == 404
    assert "nobody" in nobody.json()["error"]["problem"]
    # registered by the operator's CLI: the SuperLink's node matches no member record
    assert by_hand.exit_code == 0, by_hand.output
    printed = json.loads(by_hand.output)
    assert printed["connection"] == "fedembed"
    assert str(admin_home.coordinator_kit / "ca.crt") in (operator_home / "config.toml").read_text()
    assert after["node-b"]["flower_node_id"] is None
    unmatched = {n["node_id"]: n for n in listing["unmatched_nodes"]}
    assert set(unmatched) == {printed["flower_node_id"]}
    assert unmatched[printed["flower_node_id"]]["status"] == "registered"
    assert _trail_actions(admin_home)[-3:] == ["member.register", "member.enrol", "member.revoke"]


def test_roles_invalid_input_conflicts_and_a_superlink_that_does_not_answer(
    admin_client: TestClient, admin_auth: Auth, admin_home: ConsortiumHome, tmp_path: Path
) -> None:
    # Prepare: nothing listens on the control address
    auth_pub = generate_auth_key(tmp_path / "member-key").read_text()
    taken_key = (admin_home.kits / "nodes" / "node-b" / "auth.pub").read_text()
    admin = admin_auth[AdminRole.ADMIN]
    new = {"name": NEW, "auth_pub": auth_pub}
    authorized = admin_home.coordinator_kit / "authorized_nodes.json"
    digest = sha256_file(authorized)
    # Execute
    as_operator = admin_client.post("/v1/members", json=new, headers=admin_auth[AdminRole.OPERATOR])
    as_auditor = admin_client.post(
        "/v1/members/node-a/revoke", headers=admin_auth[AdminRole.AUDITOR]
    )
    anonymous = admin_client.get("/v1/members")
    malformed = admin_client.post(
        "/v1/members", json={"name": NEW, "auth_pub": "ssh-rsa AAAA"}, headers=admin
    )
    bad_name = admin_client.post(
        "/v1/members", json={"name": "../x", "auth_pub": auth_pub}, headers=admin
    )
    extra = admin_client.post("/v1/members", json={**new, "role": "admin"}, headers=admin)
    used_key = admin_client.post(
        "/v1/members", json={"name": NEW, "auth_pub": taken_key}, headers=admin
    )
    unchanged = sha256_file(authorized)
    enrolled = admin_client.post("/v1/members", json=new, headers=admin)
    again = admin_client.post("/v1/members", json=new, headers=admin)
    unknown = admin_client.post("/v1/members/nobody/revoke", headers=admin)
    listed = admin_client.get("/v1/members", headers=admin_auth[AdminRole.AUDITOR])
    # Assert
    assert (as_operator.status_code, as_auditor.status_code, anonymous.status_code) == (
        403,
        403,
        401,
    )
    assert malformed.status_code == 422
    assert "OpenSSH" in malformed.json()["error"]["problem"]
    assert "auth_pub" in malformed.json()["error"]["fix"]
    assert bad_name.status_code == 422
    assert extra.status_code == 422
    assert used_key.status_code == 409
    assert "already authorised" in used_key.json()["error"]["problem"]
    assert unchanged == digest  # refused requests changed nothing
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["member"]["superlink"] == "pending"
    assert enrolled.json()["authorized_nodes_sha256"] == sha256_file(authorized) != digest
    assert again.status_code == 409
    assert unknown.status_code == 404
    assert listed.status_code == 200
    assert listed.json()["superlink_reachable"] is False
    names = {m["name"]: m for m in listed.json()["members"]}
    assert names[NEW]["superlink"] == "pending"
    assert names[NEW]["online"] is None


def test_the_control_api_check_sees_a_listener_and_its_absence() -> None:
    # Prepare: one loopback port with a listener, one without
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        open_port = listener.getsockname()[1]
        # Execute
        listening = control_api_listening(f"127.0.0.1:{open_port}")
        closed = control_api_listening(f"127.0.0.1:{free_port()}")
        unreadable = control_api_listening("superlink-without-port")
    # Assert: an address it cannot read is left to `flwr` to judge
    assert (listening, closed, unreadable) == (True, False, True)
