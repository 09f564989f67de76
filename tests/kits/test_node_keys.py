from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from client_node.cli import node_app
from coordinator.cli import coordinator_app
from kits import (
    ProvisioningError,
    auth_key_fingerprint,
    generate_auth_key,
    install_auth_key,
    load_coordinator_kit,
    load_node_kit,
    provision,
    run_ckks_ceremony,
)

NODES = ["hospital-a", "bank_b"]
P256_KEY = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
)


def test_member_made_keys_through_the_commands(tmp_path: Path) -> None:
    # Prepare: each member makes its key pair on its own premises
    runner = CliRunner()
    made = {}
    for node in NODES:
        run = runner.invoke(node_app, ["keygen", "--out", str(tmp_path / "premises" / node)])
        assert run.exit_code == 0, run.output
        made[node] = json.loads(run.output)
    args = ["provision", "--out", str(tmp_path / "kits")]
    for node in NODES:
        args += ["--node", node, "--node-key", f"{node}={made[node]['auth_pub']}"]
    # Execute: the provisioner sees only the public halves
    run = runner.invoke(coordinator_app, args)
    assert run.exit_code == 0, run.output
    kits = tmp_path / "kits"
    printed = json.loads(run.output)
    listed = (kits / "nodes" / "bank_b" / "authorized_nodes.json").read_bytes()
    assert printed["authorized_nodes_sha256"] == hashlib.sha256(listed).hexdigest()
    # Assert: no auth.key anywhere in the provisioning output; kits refuse to load
    assert not list(kits.rglob("auth.key"))
    with pytest.raises(ProvisioningError, match=r"auth\.key is missing") as info:
        load_node_kit(kits / "nodes" / "bank_b")
    assert "install-auth-key" in info.value.fix
    for node in NODES:
        manifest = json.loads((kits / "nodes" / node / "kit.json").read_text())
        assert manifest["auth_key_origin"] == "member"
        assert "auth.key" not in manifest["files"]
        key = tmp_path / "premises" / node / "auth.key"
        run = runner.invoke(
            node_app, ["install-auth-key", "--kit", str(kits / "nodes" / node), "--key", str(key)]
        )
        assert run.exit_code == 0, run.output
        assert json.loads(run.output)["fingerprint"] == made[node]["fingerprint"]
        installed = kits / "nodes" / node / "auth.key"
        assert stat.S_IMODE(installed.stat().st_mode) == 0o600
        assert load_node_kit(kits / "nodes" / node).auth_public_key == (
            (tmp_path / "premises" / node / "auth.pub").read_text().strip()
        )
    coordinator = load_coordinator_kit(kits / "coordinator")
    assert (
        auth_key_fingerprint(coordinator.authorized_nodes["bank_b"])
        == (made["bank_b"]["fingerprint"])
    )
    # and the key ceremony runs on the member-made keys
    fingerprint = run_ckks_ceremony(kits, key_holder="bank_b")
    assert load_node_kit(kits / "nodes" / "hospital-a").ckks_fingerprint == fingerprint


def test_fingerprint_matches_ssh_keygen_format(tmp_path: Path) -> None:
    public = generate_auth_key(tmp_path / "k").read_text()
    fingerprint = auth_key_fingerprint(public)
    assert fingerprint.startswith("SHA256:")
    assert len(fingerprint) == len("SHA256:") + 43  # 32 bytes, unpadded base64
    assert stat.S_IMODE((tmp_path / "k" / "auth.key").stat().st_mode) == 0o600


def test_wrong_key_is_refused_and_kit_unchanged(tmp_path: Path) -> None:
    # Prepare
    own = generate_auth_key(tmp_path / "own")
    other = generate_auth_key(tmp_path / "other")
    result = provision(tmp_path / "kits", node_ids=["a", "b"], node_keys={"a": own.read_text()})
    kit = result.node_dirs["a"]
    # Execute / Assert
    with pytest.raises(ProvisioningError, match="not the private half"):
        install_auth_key(kit, other.parent / "auth.key")
    assert not (kit / "auth.key").exists()
    install_auth_key(kit, own.parent / "auth.key")
    with pytest.raises(ProvisioningError, match="already exists"):
        install_auth_key(kit, own.parent / "auth.key")
    # node b's key was made by provisioning, as before
    b = json.loads((result.node_dirs["b"] / "kit.json").read_text())
    assert b["auth_key_origin"] == "provisioning"
    assert "auth.key" in b["files"]


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ({"stranger": "x"}, "not a node of this consortium"),
        ({"a": "not a key"}, "not an OpenSSH public key"),
        ({"a": P256_KEY}, "not an EC P-384 key"),
    ],
)
def test_invalid_member_keys_are_refused(tmp_path: Path, keys: dict[str, str], match: str) -> None:
    with pytest.raises(ProvisioningError, match=match):
        provision(tmp_path / "kits", node_ids=["a"], node_keys=keys)
    assert not (tmp_path / "kits").exists()


def test_the_same_key_twice_is_refused(tmp_path: Path) -> None:
    public = generate_auth_key(tmp_path / "k").read_text()
    with pytest.raises(ProvisioningError, match="same public key"):
        provision(tmp_path / "kits", node_ids=["a", "b"], node_keys={"a": public, "b": public})
