from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts
from typer.testing import CliRunner

from client_node.cli import node_app
from coordinator.cli import coordinator_app
from crypto.ckks_aggregation import decrypt_vector, encrypt_vector, sum_encrypted
from kits import (
    ProvisioningError,
    ProvisionResult,
    ckks_keygen,
    install_ckks_public,
    install_ckks_secret,
    load_coordinator_kit,
    load_node_kit,
    provision,
    run_ckks_ceremony,
)

NODES = ["hospital-a", "bank_b", "Insurer3"]
HOLDER = "bank_b"


@pytest.fixture
def consortium(tmp_path: Path) -> ProvisionResult:
    return provision(tmp_path / "kits", node_ids=NODES)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_kits_before_the_ceremony(consortium: ProvisionResult) -> None:
    # Execute
    node = load_node_kit(consortium.node_dirs[HOLDER])
    coordinator = load_coordinator_kit(consortium.coordinator_dir)
    # Assert: parameters are agreed, no key pair exists yet, CKKS use is refused clearly
    assert node.ckks_fingerprint is None
    assert node.ckks_secret_path is None
    assert coordinator.ckks_fingerprint is None
    assert coordinator.ckks_public_path is None
    assert node.ckks_parameters == coordinator.ckks_parameters
    with pytest.raises(ProvisioningError, match="no CKKS secret context yet") as node_error:
        _ = node.ckks_secret_context
    assert "fedembed node ckks-keygen" in node_error.value.fix
    with pytest.raises(ProvisioningError, match="no CKKS public context yet") as coord_error:
        _ = coordinator.ckks_public_context
    assert "ckks-install-public" in coord_error.value.fix
    for kit in (*consortium.node_dirs.values(), consortium.coordinator_dir):
        manifest = json.loads((kit / "kit.json").read_text())
        assert manifest["ckks_fingerprint"] is None
        assert not {"ckks_secret.ctx", "ckks_public.ctx"} & set(manifest["files"])
        assert not (kit / "ckks_secret.ctx").exists()
        assert not (kit / "ckks_public.ctx").exists()


def test_ceremony_through_the_commands(consortium: ProvisionResult, tmp_path: Path) -> None:
    # Prepare
    runner = CliRunner()
    relay = tmp_path / "relay"
    # Execute: the key holder, then every other member, then the coordinator
    keygen = runner.invoke(
        node_app, ["ckks-keygen", "--kit", str(consortium.node_dirs[HOLDER]), "--out", str(relay)]
    )
    assert keygen.exit_code == 0, keygen.output
    made = json.loads(keygen.output)
    fingerprints = {made["ckks_fingerprint"]}
    pinned = {made["authorized_nodes_sha256"]}
    assert set(made["secret_bundles"]) == set(NODES) - {HOLDER}
    for member, bundle in made["secret_bundles"].items():
        run = runner.invoke(
            node_app,
            ["ckks-install", "--kit", str(consortium.node_dirs[member]), "--bundle", bundle],
        )
        assert run.exit_code == 0, run.output
        fingerprints.add(json.loads(run.output)["ckks_fingerprint"])
        pinned.add(json.loads(run.output)["authorized_nodes_sha256"])
    public = runner.invoke(
        coordinator_app,
        [
            "ckks-install-public",
            "--kit",
            str(consortium.coordinator_dir),
            "--public",
            made["public_bundle"],
        ],
    )
    assert public.exit_code == 0, public.output
    fingerprints.add(json.loads(public.output)["ckks_fingerprint"])
    # Assert: one key pair everywhere, the secret 0600 in node kits only
    assert len(fingerprints) == 1
    # every member printed the same authorised list, the one the coordinator holds
    assert pinned == {
        hashlib.sha256(
            (consortium.coordinator_dir / "authorized_nodes.json").read_bytes()
        ).hexdigest()
    }
    fingerprint = fingerprints.pop()
    nodes = {n: load_node_kit(consortium.node_dirs[n]) for n in NODES}
    coordinator = load_coordinator_kit(consortium.coordinator_dir)
    assert coordinator.ckks_fingerprint == fingerprint
    assert not ts.context_from(coordinator.ckks_public_context).is_private()
    for node in nodes.values():
        assert node.ckks_fingerprint == fingerprint
        assert node.ckks_secret_path is not None
        assert _mode(node.ckks_secret_path) == 0o600
        assert ts.context_from(node.ckks_secret_context).is_private()
        manifest = json.loads((node.path / "kit.json").read_text())
        assert "ckks_secret.ctx" in manifest["files"]
    assert (
        "ckks_secret.ctx"
        not in json.loads((consortium.coordinator_dir / "kit.json").read_text())["files"]
    )
    # the installed contexts work together
    x = np.linspace(-1.0, 1.0, 50)
    total = sum_encrypted(
        [
            encrypt_vector(x, nodes["hospital-a"].ckks_secret_context),
            encrypt_vector(2 * x, nodes["Insurer3"].ckks_secret_context),
        ],
        coordinator.ckks_public_context,
    )
    np.testing.assert_allclose(
        decrypt_vector(total, nodes[HOLDER].ckks_secret_context, 50), 3 * x, atol=1e-4
    )


def test_a_second_ceremony_is_refused(consortium: ProvisionResult, tmp_path: Path) -> None:
    # Prepare
    bundles = ckks_keygen(consortium.node_dirs[HOLDER], tmp_path / "one")
    install_ckks_secret(consortium.node_dirs["Insurer3"], bundles.secret_bundles["Insurer3"])
    install_ckks_public(consortium.coordinator_dir, bundles.public_bundle)
    # Execute / Assert: no kit is re-keyed in place
    with pytest.raises(ProvisioningError, match="already holds the CKKS key pair"):
        ckks_keygen(consortium.node_dirs[HOLDER], tmp_path / "two")
    with pytest.raises(ProvisioningError, match="already holds the CKKS key pair"):
        ckks_keygen(consortium.node_dirs["Insurer3"], tmp_path / "three")
    with pytest.raises(ProvisioningError, match="already holds the CKKS key pair"):
        install_ckks_secret(consortium.node_dirs["Insurer3"], bundles.secret_bundles["Insurer3"])
    with pytest.raises(ProvisioningError, match="already holds the CKKS key pair"):
        install_ckks_public(consortium.coordinator_dir, bundles.public_bundle)
    assert not (tmp_path / "two").exists()
    assert not (tmp_path / "three").exists()


def test_bundle_folder_must_be_new(consortium: ProvisionResult, tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "other.txt").write_text("x")
    with pytest.raises(ProvisioningError, match="not an empty folder"):
        ckks_keygen(consortium.node_dirs[HOLDER], used)
    assert load_node_kit(consortium.node_dirs[HOLDER]).ckks_fingerprint is None


def test_one_host_ceremony(consortium: ProvisionResult) -> None:
    # Execute
    fingerprint = run_ckks_ceremony(consortium.out_dir, key_holder="Insurer3")
    # Assert
    assert load_coordinator_kit(consortium.coordinator_dir).ckks_fingerprint == fingerprint
    assert {load_node_kit(p).ckks_fingerprint for p in consortium.node_dirs.values()} == {
        fingerprint
    }
    leftovers = {p.name for p in consortium.out_dir.rglob("*.bundle.json")}
    assert not leftovers  # bundles stay in a temporary relay folder


def test_one_host_ceremony_needs_a_member(consortium: ProvisionResult) -> None:
    with pytest.raises(ProvisioningError, match="not a member"):
        run_ckks_ceremony(consortium.out_dir, key_holder="outsider")


def test_manifest_must_agree_with_the_installed_context(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    """A manifest that names a CKKS file without a fingerprint (or the reverse) is refused."""
    # Prepare
    run_ckks_ceremony(consortium.out_dir)
    kit = consortium.node_dirs[HOLDER]
    manifest = json.loads((kit / "kit.json").read_text())
    manifest["ckks_fingerprint"] = None
    (kit / "kit.json").write_text(json.dumps(manifest))
    # Execute / Assert
    with pytest.raises(ProvisioningError, match=r"lists ckks_secret\.ctx but names no CKKS"):
        load_node_kit(kit)
    coordinator = consortium.coordinator_dir
    manifest = json.loads((coordinator / "kit.json").read_text())
    del manifest["files"]["ckks_public.ctx"]
    (coordinator / "kit.json").write_text(json.dumps(manifest))
    with pytest.raises(ProvisioningError, match=r"does not list ckks_public\.ctx but names a"):
        load_coordinator_kit(coordinator)
