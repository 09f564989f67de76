"""Enrolling and revoking members of a provisioned consortium (kits.enrolment), and sealing
the CKKS secret to a member enrolled after the key ceremony (kits.ckks_ceremony)."""

from __future__ import annotations

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
    BundleRefusedError,
    EnrolmentConflictError,
    MemberNotFoundError,
    ProvisioningError,
    ProvisionResult,
    accept_member_list,
    ckks_seal_for,
    enrol_member,
    generate_auth_key,
    install_auth_key,
    install_ckks_secret,
    load_coordinator_kit,
    load_node_kit,
    provision,
    revoke_member,
    revoked_members,
    run_ckks_ceremony,
    sha256_file,
)

NODES = ["hospital-a", "bank_b"]
HOLDER = "hospital-a"
NEW = "clinic-c"


@pytest.fixture
def consortium(tmp_path: Path) -> ProvisionResult:
    """Two members after the CKKS key ceremony."""
    result = provision(tmp_path / "kits", node_ids=NODES)
    run_ckks_ceremony(result.out_dir, key_holder=HOLDER)
    return result


def _member_key(folder: Path) -> str:
    """A key pair the member made itself; only auth.pub leaves it."""
    return generate_auth_key(folder).read_text(encoding="ascii")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_an_enrolled_member_gets_a_verified_kit_and_nothing_else_changes(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    # Prepare
    key = _member_key(tmp_path / "member-key")
    before = _snapshot(consortium.out_dir)
    # Execute
    kit = enrol_member(consortium.out_dir, NEW, auth_pub=key)
    # Assert: the new kit holds no private key until the member installs its own
    assert kit == consortium.out_dir / "nodes" / NEW
    assert not (kit / "auth.key").exists()
    assert stat.S_IMODE((kit / "dcpe_keyring.json").stat().st_mode) == 0o600
    install_auth_key(kit, tmp_path / "member-key" / "auth.key")
    node = load_node_kit(kit)
    coordinator = load_coordinator_kit(consortium.coordinator_dir)
    assert node.node_id == NEW
    assert node.ckks_fingerprint is None  # the key holder seals the secret to it later
    assert node.consortium_id == consortium.consortium_id
    assert node.ca_fingerprint == consortium.ca_fingerprint
    assert set(node.authorized_nodes) == {*NODES, NEW}
    assert dict(node.authorized_nodes) == dict(coordinator.authorized_nodes)
    assert sorted(coordinator.node_ids) == sorted([*NODES, NEW])
    assert (kit / "dcpe_keyring.json").read_bytes() == (
        consortium.node_dirs[NODES[1]] / "dcpe_keyring.json"
    ).read_bytes()
    # only the coordinator's authorised list and manifest changed; the rest is byte-identical
    after = _snapshot(consortium.out_dir)
    changed = {name for name in before if before[name] != after.get(name)}
    assert changed == {"coordinator/authorized_nodes.json", "coordinator/kit.json"}
    files = ("ca.crt", "auth.pub", "auth.key", "dcpe_keyring.json", "authorized_nodes.json")
    added = {n for n in after if n not in before}
    assert added == {f"nodes/{NEW}/{f}" for f in (*files, "kit.json")}


def test_the_key_holder_seals_the_ckks_secret_to_the_new_member(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    # Prepare
    key = _member_key(tmp_path / "member-key")
    kit = enrol_member(consortium.out_dir, NEW, auth_pub=key)
    install_auth_key(kit, tmp_path / "member-key" / "auth.key")
    intruder_key = _member_key(tmp_path / "intruder-key")
    # Execute
    bundle = ckks_seal_for(
        consortium.node_dirs[HOLDER], tmp_path / "relay", node_id=NEW, auth_pub=key
    )
    misdirected = ckks_seal_for(
        consortium.node_dirs[HOLDER], tmp_path / "other", node_id=NEW, auth_pub=intruder_key
    )
    # Assert: a bundle sealed to another key is refused and leaves the kit unchanged
    manifest = (kit / "kit.json").read_bytes()
    with pytest.raises(BundleRefusedError):
        install_ckks_secret(kit, misdirected)
    assert (kit / "kit.json").read_bytes() == manifest
    assert not (kit / "ckks_secret.ctx").exists()
    fingerprint = install_ckks_secret(kit, bundle)
    assert fingerprint == load_coordinator_kit(consortium.coordinator_dir).ckks_fingerprint
    node = load_node_kit(kit)
    holder = load_node_kit(consortium.node_dirs[HOLDER])
    assert node.ckks_secret_context == holder.ckks_secret_context


def test_sealing_is_refused_before_the_ceremony_and_for_a_listed_name_with_another_key(
    tmp_path: Path,
) -> None:
    # Prepare
    result = provision(tmp_path / "kits", node_ids=NODES)
    key = _member_key(tmp_path / "member-key")
    # Execute / Assert: no secret to seal yet
    with pytest.raises(ProvisioningError, match="no CKKS secret context yet"):
        ckks_seal_for(result.node_dirs[HOLDER], tmp_path / "relay", node_id=NEW, auth_pub=key)
    run_ckks_ceremony(result.out_dir, key_holder=HOLDER)
    # an existing member's name with a substituted key, the holder itself, a malformed key
    with pytest.raises(ProvisioningError, match="another public key"):
        ckks_seal_for(result.node_dirs[HOLDER], tmp_path / "r1", node_id=NODES[1], auth_pub=key)
    holder = (result.node_dirs[HOLDER] / "auth.pub").read_text()
    with pytest.raises(ProvisioningError, match="own member"):
        ckks_seal_for(result.node_dirs[HOLDER], tmp_path / "r2", node_id=HOLDER, auth_pub=holder)
    with pytest.raises(ProvisioningError, match="not an OpenSSH public key"):
        ckks_seal_for(result.node_dirs[HOLDER], tmp_path / "r3", node_id=NEW, auth_pub="ssh-rsa x")


def test_revoking_removes_the_key_and_keeps_it_from_being_enrolled_again(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    # Prepare
    key = _member_key(tmp_path / "member-key")
    enrol_member(consortium.out_dir, NEW, auth_pub=key)
    # Execute
    entry = revoke_member(consortium.out_dir, NEW)
    # Assert
    coordinator = load_coordinator_kit(consortium.coordinator_dir)
    assert NEW not in coordinator.authorized_nodes
    assert sorted(coordinator.node_ids) == sorted(NODES)
    assert entry.node_id == NEW
    assert entry.fingerprint.startswith("SHA256:")
    assert revoked_members(consortium.out_dir) == [entry]
    with pytest.raises(EnrolmentConflictError, match="was revoked"):
        enrol_member(consortium.out_dir, "clinic-d", auth_pub=key)
    with pytest.raises(EnrolmentConflictError, match="revoked member"):
        enrol_member(consortium.out_dir, NEW, auth_pub=_member_key(tmp_path / "fresh"))
    with pytest.raises(MemberNotFoundError):
        revoke_member(consortium.out_dir, NEW)
    # an explicit re-enrolment may take the revoked key and name back
    kit = enrol_member(consortium.out_dir, NEW, auth_pub=key, reenrol=True)
    assert NEW in load_coordinator_kit(consortium.coordinator_dir).authorized_nodes
    assert json.loads((kit / "kit.json").read_text())["node_id"] == NEW


def test_enrolment_refuses_taken_names_used_keys_and_malformed_keys(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    # Prepare
    existing_key = (consortium.node_dirs[NODES[1]] / "auth.pub").read_text()
    key = _member_key(tmp_path / "member-key")
    p256 = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    before = _snapshot(consortium.out_dir)
    # Execute / Assert
    with pytest.raises(EnrolmentConflictError, match="already authorised"):
        enrol_member(consortium.out_dir, NEW, auth_pub=existing_key)
    with pytest.raises(EnrolmentConflictError, match="taken"):
        enrol_member(consortium.out_dir, "HOSPITAL-A", auth_pub=key)
    with pytest.raises(ProvisioningError, match="not an OpenSSH public key"):
        enrol_member(consortium.out_dir, NEW, auth_pub="not a key")
    with pytest.raises(ProvisioningError, match="not an EC P-384 key"):
        enrol_member(consortium.out_dir, NEW, auth_pub=p256)
    with pytest.raises(ProvisioningError, match="invalid"):
        enrol_member(consortium.out_dir, "../escape", auth_pub=key)
    # nothing was written by the refused enrolments
    assert _snapshot(consortium.out_dir) == before
    # and the last member is not revoked
    revoke_member(consortium.out_dir, NODES[0])
    with pytest.raises(ProvisioningError, match="last authorised member"):
        revoke_member(consortium.out_dir, NODES[1])
    assert set(load_coordinator_kit(consortium.coordinator_dir).authorized_nodes) == {NODES[1]}


def test_an_edited_authorised_list_is_caught_before_anything_is_enrolled(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    # Prepare: someone slips a key of its own into the coordinator's list
    intruder = _member_key(tmp_path / "intruder")
    listed = consortium.coordinator_dir / "authorized_nodes.json"
    authorized = json.loads(listed.read_text())
    listed.write_text(json.dumps({**authorized, "intruder": intruder.strip()}, indent=2))
    # Execute / Assert: the loader refuses it, and enrolment writes nothing
    with pytest.raises(ProvisioningError, match="modified after provisioning"):
        load_coordinator_kit(consortium.coordinator_dir)
    with pytest.raises(ProvisioningError, match="modified after provisioning"):
        enrol_member(consortium.out_dir, NEW, auth_pub=_member_key(tmp_path / "member"))
    assert not (consortium.out_dir / "nodes" / NEW).exists()


def test_the_cli_enrols_revokes_and_seals(consortium: ProvisionResult, tmp_path: Path) -> None:
    # Prepare
    runner = CliRunner()
    public = generate_auth_key(tmp_path / "member-key")
    # Execute
    enrolled = runner.invoke(
        coordinator_app,
        ["enrol", "--kits", str(consortium.out_dir), "--name", NEW, "--auth-pub", str(public)],
    )
    sealed = runner.invoke(
        node_app,
        [
            "ckks-seal",
            "--kit",
            str(consortium.node_dirs[HOLDER]),
            "--member",
            NEW,
            "--auth-pub",
            str(consortium.out_dir / "nodes" / NEW / "auth.pub"),
            "--out",
            str(tmp_path / "relay"),
        ],
    )
    sha_after_enrolment = sha256_file(consortium.coordinator_dir / "authorized_nodes.json")
    twice = runner.invoke(
        coordinator_app,
        ["enrol", "--kits", str(consortium.out_dir), "--name", "x", "--auth-pub", str(public)],
    )
    revoked = runner.invoke(
        coordinator_app, ["revoke", "--kits", str(consortium.out_dir), "--name", NEW]
    )
    # Assert
    assert enrolled.exit_code == 0, enrolled.output
    answer = json.loads(enrolled.output)
    assert answer["kit"] == str(consortium.out_dir / "nodes" / NEW)
    assert answer["authorized_nodes_sha256"] == sha_after_enrolment
    assert answer["ca_fingerprint"] == consortium.ca_fingerprint
    assert sealed.exit_code == 0, sealed.output
    assert Path(json.loads(sealed.output)["bundle"]).is_file()
    assert twice.exit_code != 0
    assert isinstance(twice.exception, EnrolmentConflictError)
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.output)["state"] == "revoked"


def test_an_existing_member_takes_the_new_list_only_with_the_pinned_digest(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    # Prepare
    enrol_member(consortium.out_dir, NEW, auth_pub=_member_key(tmp_path / "member-key"))
    current = consortium.coordinator_dir / "authorized_nodes.json"
    pinned = sha256_file(current)
    member = consortium.node_dirs[NODES[1]]
    forged = tmp_path / "forged.json"
    listed = json.loads(current.read_text())
    intruder = _member_key(tmp_path / "intruder").strip()
    forged.write_text(json.dumps({**listed, NODES[1]: intruder}, indent=2))
    before = _snapshot(member)
    # Execute / Assert: a list with another digest, or one that replaces this member's key
    with pytest.raises(ProvisioningError, match="not the pinned"):
        accept_member_list(member, forged, sha256=pinned)
    with pytest.raises(ProvisioningError, match="own key"):
        accept_member_list(member, forged, sha256=sha256_file(forged))
    assert _snapshot(member) == before
    digest = accept_member_list(member, current, sha256=pinned.upper())
    node = load_node_kit(member)
    assert digest == pinned
    assert set(node.authorized_nodes) == {*NODES, NEW}
    assert node.ckks_fingerprint is not None  # the rest of the kit is as it was
