from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from coordinator.cli import coordinator_app
from crypto.ckks_aggregation import (
    CkksError,
    CkksParameters,
    decrypt_vector,
    encrypt_vector,
    sum_encrypted,
)
from crypto.ckks_search_key import load_ckks_key
from crypto.dcpe import ScaleAndPerturb
from crypto.dcpe_keys import DcpeKeyring
from embedding_core.errors import FedembedError
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import (
    DEFAULT_DCPE_BETA,
    CoordinatorKit,
    GatewayKit,
    NodeKit,
    ProvisioningError,
    ProvisionResult,
    load_coordinator_kit,
    load_gateway_kit,
    load_node_kit,
    provision,
    validate_node_ids,
)

NODES = ["hospital-a", "bank_b", "Insurer3"]
KEYRING = "dcpe_keyring.json"
SECRET_FILES = {
    "admin/ca.key",
    "coordinator/server.key",
    f"gateway/{KEYRING}",
    "gateway/ckks_search.key",
    *(f"nodes/{n}/{f}" for n in NODES for f in ("auth.key", "ckks_secret.ctx", KEYRING)),
}


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> ProvisionResult:
    """Provisioned kits after the one-host CKKS key ceremony (tests/kits/test_ckks_ceremony.py
    covers the kits before it)."""
    out = tmp_path_factory.mktemp("consortium") / "kits"
    result = provision(out, node_ids=NODES, superlink_host="coord.example.org")
    run_ckks_ceremony(out, key_holder="bank_b")
    return result


def _copy_kit(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)  # copy2 keeps the modes
    return dst


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _replace_consistently(kit: Path, name: str, data: bytes) -> None:
    """Replace a kit file and its manifest hash, so only the content checks can refuse it."""
    (kit / name).write_bytes(data)  # keeps the file's mode
    manifest = json.loads((kit / "kit.json").read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (kit / "kit.json").write_text(json.dumps(manifest))


# -- layout --------------------------------------------------------------------------------


def test_layout_and_permissions(consortium: ProvisionResult) -> None:
    out = consortium.out_dir
    expected = {
        "admin/ca.key",
        "admin/ca.crt",
        *(
            f"coordinator/{f}"
            for f in (
                "ca.crt",
                "server.crt",
                "server.key",
                "ckks_public.ctx",
                "authorized_nodes.json",
                "kit.json",
            )
        ),
        *(
            f"nodes/{n}/{f}"
            for n in NODES
            for f in (
                "ca.crt",
                "auth.key",
                "auth.pub",
                "ckks_secret.ctx",
                KEYRING,
                "authorized_nodes.json",
                "kit.json",
            )
        ),
        f"gateway/{KEYRING}",
        "gateway/ckks_search.key",
        "gateway/kit.json",
    }
    found = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert found == expected
    for rel in SECRET_FILES:
        assert _mode(out / rel) == 0o600, rel
    for rel in found - SECRET_FILES:
        assert not _mode(out / rel) & (stat.S_IWGRP | stat.S_IWOTH), rel
    assert _mode(consortium.admin_dir) == 0o700
    assert _mode(consortium.gateway_dir) == 0o700
    assert consortium.gateway_dir == out / "gateway"
    assert consortium.node_dirs == {n: out / "nodes" / n for n in NODES}


def test_ca_key_never_leaves_admin(consortium: ProvisionResult) -> None:
    ca_key = (consortium.admin_dir / "ca.key").read_bytes()
    for path in consortium.out_dir.rglob("*"):
        if path.is_file() and path.parent != consortium.admin_dir:
            assert path.name != "ca.key"
            assert ca_key not in path.read_bytes(), path


def test_ca_certificate(consortium: ProvisionResult) -> None:
    ca = x509.load_pem_x509_certificate((consortium.admin_dir / "ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    key = serialization.load_pem_private_key((consortium.admin_dir / "ca.key").read_bytes(), None)
    assert key.public_key() == ca.public_key()
    ca.verify_directly_issued_by(ca)
    for kit in [consortium.coordinator_dir, *consortium.node_dirs.values()]:
        assert (kit / "ca.crt").read_bytes() == (consortium.admin_dir / "ca.crt").read_bytes()
    assert (
        consortium.ca_fingerprint
        == hashlib.sha256(ca.public_bytes(serialization.Encoding.DER)).hexdigest()
    )


@pytest.mark.parametrize(
    ("host", "extra"),
    [
        ("coord.example.org", x509.DNSName("coord.example.org")),
        ("10.1.2.3", x509.IPAddress(ipaddress.ip_address("10.1.2.3"))),
        ("127.0.0.1", None),
        ("::1", x509.IPAddress(ipaddress.ip_address("::1"))),
    ],
)
def test_server_certificate_names(
    tmp_path: Path, host: str, extra: x509.GeneralName | None
) -> None:
    result = provision(tmp_path / "kits", node_ids=["n1"], superlink_host=host)
    cert = x509.load_pem_x509_certificate((result.coordinator_dir / "server.crt").read_bytes())
    sans = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    assert x509.IPAddress(ipaddress.ip_address("127.0.0.1")) in sans
    assert x509.DNSName("localhost") in sans
    if extra is not None:
        assert extra in sans
    assert len(sans) == len(set(sans))
    ca = x509.load_pem_x509_certificate((result.coordinator_dir / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_node_auth_keys_are_flower_compatible(consortium: ProvisionResult) -> None:
    authorized = json.loads((consortium.coordinator_dir / "authorized_nodes.json").read_text())
    assert sorted(authorized) == sorted(NODES)
    publics = set()
    for node_id, kit in consortium.node_dirs.items():
        # exactly what flower-supernode does with --auth-supernode-private-key
        private = serialization.load_ssh_private_key((kit / "auth.key").read_bytes(), None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert isinstance(private.curve, ec.SECP384R1)
        public = serialization.load_ssh_public_key((kit / "auth.pub").read_bytes())
        assert public == private.public_key()
        assert (kit / "auth.pub").read_text().strip() == authorized[node_id]
        assert authorized[node_id].startswith("ecdsa-sha2-nistp384 ")
        publics.add(authorized[node_id])
    assert len(publics) == len(NODES)


def test_ckks_contexts(consortium: ProvisionResult) -> None:
    secrets = {(kit / "ckks_secret.ctx").read_bytes() for kit in consortium.node_dirs.values()}
    assert len(secrets) == 1, "all nodes must share the consortium's CKKS secret context"
    secret = secrets.pop()
    public = (consortium.coordinator_dir / "ckks_public.ctx").read_bytes()
    assert ts.context_from(secret).is_private()
    assert not ts.context_from(public).is_private()

    x = np.linspace(-1, 1, 100)
    total = sum_encrypted([encrypt_vector(x, secret), encrypt_vector(x, secret)], public)
    np.testing.assert_allclose(decrypt_vector(total, secret, 100), 2 * x, atol=1e-5)
    with pytest.raises(CkksError, match="no secret key"):
        decrypt_vector(total, public, 100)


def test_coordinator_kit_holds_no_member_secret(consortium: ProvisionResult) -> None:
    node_secrets = [
        (kit / name).read_bytes()
        for kit in consortium.node_dirs.values()
        for name in ("auth.key", "ckks_secret.ctx", KEYRING)
    ]
    keyring = json.loads((consortium.gateway_dir / KEYRING).read_text())
    prf_keys = [key["prf_key"].encode() for key in keyring["keys"]]
    assert prf_keys
    for path in consortium.coordinator_dir.iterdir():
        assert path.name != KEYRING
        data = path.read_bytes()
        for secret in [*node_secrets, *prf_keys]:
            assert secret not in data, path
        if path.suffix == ".ctx":
            assert not ts.context_from(data).is_private(), path


def test_one_dcpe_keyring_for_nodes_and_gateway(consortium: ProvisionResult) -> None:
    copies = [consortium.gateway_dir / KEYRING] + [
        kit / KEYRING for kit in consortium.node_dirs.values()
    ]
    assert len({path.read_bytes() for path in copies}) == 1, "one tenant key for everyone"
    for path in copies:
        assert _mode(path) == 0o600, path
    rings = [DcpeKeyring.load(path) for path in copies]
    assert {ring.tenant for ring in rings} == {consortium.consortium_id}
    assert rings[0].current().beta == DEFAULT_DCPE_BETA == 1.0
    assert len(rings[0].key_ids) == 1

    # a vector one node encrypts is decrypted by the gateway and by another node
    plain = np.random.default_rng(7).standard_normal((5, 32)).astype(np.float32)
    uploaded = ScaleAndPerturb(rings[1].current()).encrypt(plain)
    for ring in (rings[0], rings[2]):
        np.testing.assert_allclose(
            ScaleAndPerturb(ring.current()).decrypt(uploaded), plain, atol=1e-4
        )


def test_each_consortium_gets_its_own_keyring(tmp_path: Path) -> None:
    first = provision(tmp_path / "one", node_ids=["a"])
    second = provision(tmp_path / "two", node_ids=["a"])
    one = DcpeKeyring.load(first.gateway_dir / KEYRING).current()
    two = DcpeKeyring.load(second.gateway_dir / KEYRING).current()
    assert one.tenant == first.consortium_id != two.tenant == second.consortium_id
    assert one.prf_key != two.prf_key


@pytest.mark.parametrize("beta", [0.25, 4.0])
def test_custom_dcpe_beta(tmp_path: Path, beta: float) -> None:
    result = provision(tmp_path / "kits", node_ids=["a"], dcpe_beta=beta)
    assert DcpeKeyring.load(result.gateway_dir / KEYRING).current().beta == beta
    assert DcpeKeyring.load(result.node_dirs["a"] / KEYRING).current().beta == beta


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf"), 1e9, True, "1"])
def test_invalid_dcpe_beta(tmp_path: Path, beta: object) -> None:
    with pytest.raises(ProvisioningError, match="dcpe_beta") as info:
        provision(tmp_path / "kits", node_ids=["a"], dcpe_beta=beta)  # type: ignore[arg-type]
    assert "Fix:" in str(info.value)
    assert not (tmp_path / "kits").exists()


def test_manifests(consortium: ProvisionResult) -> None:
    coordinator = json.loads((consortium.coordinator_dir / "kit.json").read_text())
    assert coordinator["kind"] == "coordinator"
    assert coordinator["node_ids"] == NODES
    assert coordinator["created"].endswith("Z")
    assert coordinator["ckks"] == CkksParameters().as_dict()
    kits = [consortium.coordinator_dir, consortium.gateway_dir, *consortium.node_dirs.values()]
    for kit in kits:
        manifest = json.loads((kit / "kit.json").read_text())
        assert manifest["consortium_id"] == consortium.consortium_id
        if kit != consortium.gateway_dir:  # set by the key ceremony, the same everywhere
            assert manifest["ckks_fingerprint"] == coordinator["ckks_fingerprint"]
            assert isinstance(manifest["ckks_fingerprint"], str)
        files = {p.name for p in kit.iterdir()} - {"kit.json"}
        assert set(manifest["files"]) == files
        for name, digest in manifest["files"].items():
            assert hashlib.sha256((kit / name).read_bytes()).hexdigest() == digest
    node = json.loads((consortium.node_dirs["bank_b"] / "kit.json").read_text())
    assert node["kind"] == "node"
    assert node["node_id"] == "bank_b"
    assert node["dcpe_key_scope"] == "consortium"
    assert "dcpe_key_scope" not in coordinator
    gateway = json.loads((consortium.gateway_dir / "kit.json").read_text())
    assert gateway["kind"] == "gateway"
    assert gateway["node_ids"] == NODES
    assert gateway["dcpe_key_scope"] == "consortium"
    assert set(gateway["files"]) == {KEYRING, "ckks_search.key"}


def test_custom_ckks_parameters(tmp_path: Path) -> None:
    params = CkksParameters(16384, (60, 40, 40, 40, 60), 40)
    result = provision(tmp_path / "kits", node_ids=["a"], ckks=params)
    assert load_node_kit(result.node_dirs["a"]).ckks_parameters == params
    assert load_coordinator_kit(result.coordinator_dir).ckks_parameters == params


# -- validation and overwrite ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("node_ids", "fragment"),
    [
        ([], "no node ids"),
        ([""], "empty"),
        (["a", "a"], "given twice"),
        (["Node", "node"], "case is ignored"),
        (["a b"], "invalid"),
        (["a.b"], "invalid"),
        (["../etc"], "invalid"),
        (["x" * 65], "invalid"),
        ("hospital", "string"),
        ([3], "not a string"),
    ],
)
def test_invalid_node_ids(tmp_path: Path, node_ids: object, fragment: str) -> None:
    with pytest.raises(ProvisioningError, match=fragment) as info:
        provision(tmp_path / "kits", node_ids=node_ids)  # type: ignore[arg-type]
    assert isinstance(info.value, FedembedError)
    assert "Expected:" in str(info.value)
    assert not (tmp_path / "kits").exists()


def test_validate_node_ids_accepts_the_allowed_alphabet() -> None:
    assert validate_node_ids(["a", "B-2", "c_3"]) == ("a", "B-2", "c_3")


@pytest.mark.parametrize("host", ["", "0.0.0.0", "https://x.org", "host:8080", "bad_host.org"])
def test_invalid_superlink_host(tmp_path: Path, host: str) -> None:
    with pytest.raises(ProvisioningError, match="superlink_host"):
        provision(tmp_path / "kits", node_ids=["a"], superlink_host=host)


@pytest.mark.parametrize("days", [0, -1, 5000, True])
def test_invalid_validity(tmp_path: Path, days: int) -> None:
    with pytest.raises(ProvisioningError, match="validity_days"):
        provision(tmp_path / "kits", node_ids=["a"], validity_days=days)


def test_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "kits"
    first = provision(out, node_ids=["a"])
    with pytest.raises(ProvisioningError, match="already exists"):
        provision(out, node_ids=["a"])
    assert load_coordinator_kit(out / "coordinator").ca_fingerprint == first.ca_fingerprint

    (out / "notes.txt").write_text("keep me")
    second = provision(out, node_ids=["b"], force=True)
    assert second.ca_fingerprint != first.ca_fingerprint
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in (out / "nodes").iterdir()) == ["b"]
    assert load_node_kit(out / "nodes" / "b").consortium_id == second.consortium_id
    assert load_gateway_kit(out / "gateway").consortium_id == second.consortium_id
    assert load_gateway_kit(out / "gateway").node_ids == ("b",)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


def test_empty_existing_dir_is_fine_and_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    provision(tmp_path / "empty", node_ids=["a"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProvisioningError, match="not a folder"):
        provision(tmp_path / "file", node_ids=["a"], force=True)


# -- loading ---------------------------------------------------------------------------------


def test_load_kits(consortium: ProvisionResult) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        node = load_node_kit(consortium.node_dirs["hospital-a"])
        coordinator = load_coordinator_kit(consortium.coordinator_dir)
    assert isinstance(node, NodeKit)
    assert node.node_id == "hospital-a"
    assert node.superlink_host == "coord.example.org"
    assert node.dcpe_keyring_path == consortium.node_dirs["hospital-a"] / KEYRING
    assert DcpeKeyring.load(node.dcpe_keyring_path).tenant == node.consortium_id
    assert ts.context_from(node.ckks_secret_context).is_private()
    assert node.auth_public_key == coordinator.authorized_nodes["hospital-a"]
    assert "--auth-supernode-private-key" in node.supernode_args()
    assert "ckks_secret_context=" not in repr(node)  # secrets stay out of logs

    assert isinstance(coordinator, CoordinatorKit)
    assert coordinator.node_ids == tuple(NODES)
    assert not ts.context_from(coordinator.ckks_public_context).is_private()
    assert coordinator.superlink_tls_args()[:2] == [
        "--ssl-certfile",
        str(consortium.coordinator_dir / "server.crt"),
    ]


def test_every_node_kit_carries_the_authorised_node_list(consortium: ProvisionResult) -> None:
    coordinator = load_coordinator_kit(consortium.coordinator_dir)
    for node_id, kit in consortium.node_dirs.items():
        node = load_node_kit(kit)
        assert node.authorized_nodes == coordinator.authorized_nodes
        assert node.authorized_nodes[node_id] == node.auth_public_key


def test_a_node_kit_whose_list_lacks_its_own_key_is_refused(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    kit = _copy_kit(consortium.node_dirs["hospital-a"], tmp_path / "kit")
    authorized = json.loads((kit / "authorized_nodes.json").read_text())
    authorized["hospital-a"] = authorized["bank_b"]
    _replace_consistently(kit, "authorized_nodes.json", json.dumps(authorized).encode())
    with pytest.raises(ProvisioningError, match=r"authorized_nodes\.json does not hold"):
        load_node_kit(kit)


def test_load_gateway_kit(consortium: ProvisionResult) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gateway = load_gateway_kit(consortium.gateway_dir)
    assert isinstance(gateway, GatewayKit)
    assert gateway.path == consortium.gateway_dir
    assert gateway.consortium_id == consortium.consortium_id
    assert gateway.node_ids == tuple(NODES)
    assert gateway.dcpe_keyring_path == consortium.gateway_dir / KEYRING
    ring = DcpeKeyring.load(gateway.dcpe_keyring_path)
    assert ring.tenant == gateway.consortium_id
    assert "prf_key" not in repr(gateway)
    search_key = load_ckks_key(gateway.ckks_search_key_path)  # the gateway's CKKS secret
    assert search_key.layout.dimension == 384


@pytest.mark.parametrize("name", [KEYRING, "ckks_secret.ctx", "ca.crt", "auth.pub"])
def test_tampered_node_file_is_named(
    consortium: ProvisionResult, tmp_path: Path, name: str
) -> None:
    kit = _copy_kit(consortium.node_dirs["bank_b"], tmp_path / "kit")
    data = bytearray((kit / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (kit / name).write_bytes(bytes(data))
    with pytest.raises(ProvisioningError, match=f"{name} was modified"):
        load_node_kit(kit)


def test_tampered_gateway_keyring_is_named(consortium: ProvisionResult, tmp_path: Path) -> None:
    kit = _copy_kit(consortium.gateway_dir, tmp_path / "kit")
    keyring = json.loads((kit / KEYRING).read_text())
    keyring["keys"][0]["beta"] = 64.0  # a weaker key, still a valid keyring
    (kit / KEYRING).write_text(json.dumps(keyring))
    with pytest.raises(ProvisioningError, match=r"dcpe_keyring\.json was modified"):
        load_gateway_kit(kit)


@pytest.mark.parametrize("loader", [load_node_kit, load_gateway_kit])
def test_keyring_of_another_consortium_is_refused(
    consortium: ProvisionResult, tmp_path: Path, loader: Callable[[Path], object]
) -> None:
    """Even with a consistent manifest, a kit may not hold another tenant's keyring."""
    source = consortium.node_dirs["bank_b"] if loader is load_node_kit else consortium.gateway_dir
    kit = _copy_kit(source, tmp_path / "kit")
    other = provision(tmp_path / "other", node_ids=["x"])
    _replace_consistently(kit, KEYRING, (other.gateway_dir / KEYRING).read_bytes())
    with pytest.raises(
        ProvisioningError, match=f"{other.consortium_id}.*not of consortium"
    ) as info:
        loader(kit)
    assert KEYRING in info.value.problem
    assert "re-provision" in info.value.fix


def test_malformed_keyring_is_named(consortium: ProvisionResult, tmp_path: Path) -> None:
    kit = _copy_kit(consortium.node_dirs["bank_b"], tmp_path / "kit")
    _replace_consistently(kit, KEYRING, b'{"format": "something else"}\n')
    with pytest.raises(ProvisioningError, match=r"dcpe_keyring\.json is not a usable DCPE") as info:
        load_node_kit(kit)
    assert info.value.fix


def test_readable_keyring_is_refused(consortium: ProvisionResult, tmp_path: Path) -> None:
    for source, loader in (
        (consortium.node_dirs["bank_b"], load_node_kit),
        (consortium.gateway_dir, load_gateway_kit),
    ):
        kit = _copy_kit(source, tmp_path / source.name)
        os.chmod(kit / KEYRING, 0o640)
        with pytest.raises(ProvisioningError, match=r"dcpe_keyring\.json.*group or others") as info:
            loader(kit)
        assert "chmod 600" in info.value.fix


def test_tampered_coordinator_file_is_named(consortium: ProvisionResult, tmp_path: Path) -> None:
    kit = _copy_kit(consortium.coordinator_dir, tmp_path / "kit")
    authorized = json.loads((kit / "authorized_nodes.json").read_text())
    authorized["intruder"] = authorized["bank_b"]
    (kit / "authorized_nodes.json").write_text(json.dumps(authorized))
    with pytest.raises(ProvisioningError, match=r"authorized_nodes\.json was modified"):
        load_coordinator_kit(kit)


def test_missing_file_and_manifest(consortium: ProvisionResult, tmp_path: Path) -> None:
    kit = _copy_kit(consortium.node_dirs["bank_b"], tmp_path / "kit")
    (kit / "auth.key").unlink()
    with pytest.raises(ProvisioningError, match=r"auth\.key is missing"):
        load_node_kit(kit)
    (kit / "kit.json").unlink()
    with pytest.raises(ProvisioningError, match=r"kit\.json does not exist"):
        load_node_kit(kit)
    with pytest.raises(ProvisioningError, match="not a folder"):
        load_node_kit(tmp_path / "nowhere")


def test_wrong_kind_is_refused(consortium: ProvisionResult) -> None:
    with pytest.raises(ProvisioningError, match="'node' kit"):
        load_coordinator_kit(consortium.node_dirs["bank_b"])
    with pytest.raises(ProvisioningError, match="'coordinator' kit"):
        load_node_kit(consortium.coordinator_dir)
    with pytest.raises(ProvisioningError, match="'gateway' kit"):
        load_node_kit(consortium.gateway_dir)
    with pytest.raises(ProvisioningError, match="'node' kit"):
        load_gateway_kit(consortium.node_dirs["bank_b"])


def test_manifest_must_list_every_file(consortium: ProvisionResult, tmp_path: Path) -> None:
    kit = _copy_kit(consortium.node_dirs["bank_b"], tmp_path / "kit")
    manifest = json.loads((kit / "kit.json").read_text())
    del manifest["files"][KEYRING]
    (kit / "kit.json").write_text(json.dumps(manifest))
    with pytest.raises(ProvisioningError, match=r"does not list dcpe_keyring\.json"):
        load_node_kit(kit)


def test_secret_context_in_coordinator_kit_is_refused(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    """Even with a consistent manifest, a coordinator kit may not hold the secret key."""
    kit = _copy_kit(consortium.coordinator_dir, tmp_path / "kit")
    secret = (consortium.node_dirs["bank_b"] / "ckks_secret.ctx").read_bytes()
    (kit / "ckks_public.ctx").write_bytes(secret)
    manifest = json.loads((kit / "kit.json").read_text())
    manifest["files"]["ckks_public.ctx"] = hashlib.sha256(secret).hexdigest()
    (kit / "kit.json").write_text(json.dumps(manifest))
    with pytest.raises(ProvisioningError, match="holds the CKKS secret key"):
        load_coordinator_kit(kit)


def test_readable_secret_is_refused(consortium: ProvisionResult, tmp_path: Path) -> None:
    kit = _copy_kit(consortium.node_dirs["bank_b"], tmp_path / "kit")
    os.chmod(kit / "auth.key", 0o644)
    with pytest.raises(ProvisioningError, match=r"auth\.key.*mode 0644.*chmod 600"):
        load_node_kit(kit)
    coordinator = _copy_kit(consortium.coordinator_dir, tmp_path / "coordinator")
    os.chmod(coordinator / "server.key", 0o640)
    with pytest.raises(ProvisioningError, match=r"server\.key.*mode 0640"):
        load_coordinator_kit(coordinator)


def test_cli_provision_prints_the_gateway_kit(tmp_path: Path) -> None:
    out = tmp_path / "kits"
    args = ["provision", "--out", str(out), "--node", "a", "--node", "b", "--dcpe-beta", "0.5"]
    run = CliRunner().invoke(coordinator_app, args)
    assert run.exit_code == 0, run.output
    printed = json.loads(run.output)
    assert printed["gateway"] == str(out / "gateway")
    gateway = load_gateway_kit(printed["gateway"])
    assert gateway.node_ids == ("a", "b")
    assert DcpeKeyring.load(gateway.dcpe_keyring_path).current().beta == 0.5


# -- a real SuperLink accepts the TLS material ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"flower-superlink exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"flower-superlink did not listen within {timeout} s:\n{log.read_text()[-3000:]}")


def _handshake(context: ssl.SSLContext, host: str, port: int) -> tuple[str | None, object]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=60) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        first_line = tls.recv(4096).split(b"\r\n", 1)[0]
        return tls.version(), first_line


def test_flower_superlink_serves_https_with_the_kit(
    consortium: ProvisionResult, tmp_path: Path
) -> None:
    kit = load_coordinator_kit(consortium.coordinator_dir)
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # flower-superexec
        "FLWR_HOME": str(tmp_path / "flwr-home"),
    }
    log = tmp_path / "superlink.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                str(bin_dir / "flower-superlink"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *kit.superlink_tls_args(),
                "--database",
                str(tmp_path / "state.db"),
                "--disable-runtime-dependency-installation",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            start_new_session=True,  # its own process group: we stop it and its children
        )
    try:
        _wait_listening(proc, port, log, timeout=600)  # start-up on a loaded machine
        trusted = ssl.create_default_context(cafile=str(kit.ca_cert_path))
        for host in ("127.0.0.1", "localhost"):
            version, status = _handshake(trusted, host, port)
            assert version in {"TLSv1.2", "TLSv1.3"}
            assert status.startswith(b"HTTP/1.1 ")  # type: ignore[attr-defined]

        untrusted = ssl.create_default_context()  # system roots, not our CA
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(untrusted, "127.0.0.1", port)
        other_ca = provision(tmp_path / "other", node_ids=["x"]).coordinator_dir / "ca.crt"
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(ssl.create_default_context(cafile=str(other_ca)), "127.0.0.1", port)
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the SuperLink and the children it spawned (one process group, ours)."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.5)  # let its children exit; the SIGKILL round reaps stragglers
