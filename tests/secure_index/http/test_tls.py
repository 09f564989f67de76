"""TLS between partner, gateway and store: split roles over HTTPS end to end, and the
adversaries: a store impostor with another CA's certificate, a client without the CA,
plain HTTP to a TLS store, plain HTTP across hosts, a TLS key others can read."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from crypto.dcpe import ScaleAndPerturb
from crypto.dcpe_keys import DcpeKeyring
from embedding_core.errors import FedembedError
from index_client import routes
from index_client.gateway_client import GatewayClient
from index_client.transport import ServiceTransport, TlsTrustError
from kits.certificates import make_ca, pem_cert, pem_private
from kits.service_certificates import issue_service_certificate, make_service_cert
from secure_index.service.local_service import LocalIndexService, start_index_service
from secure_index.service.settings import ServiceSettings

DIM = 16
COLLECTION = "enc"
DOCS = "docs"  # the bundled encoder's width, for `fedembed node upload`
LOOPBACK = ["127.0.0.1", "localhost"]


@dataclass
class Pki:
    admin: Path  # the consortium CA (ca.key, ca.crt)
    ca: Path
    store_tls: tuple[Path, Path]
    gateway_tls: tuple[Path, Path]
    rogue_ca: Path  # another CA, and a certificate it issued for 127.0.0.1
    rogue_tls: tuple[Path, Path]


@dataclass
class Split:
    store: LocalIndexService
    gateway: LocalIndexService
    store_token: str
    node_token: str
    partner_token: str
    keyring: DcpeKeyring
    pki: Pki
    keyring_path: Path


def _write_ca(
    folder: Path, label: str
) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    folder.mkdir(mode=0o700, parents=True)
    key, cert = make_ca(label * 8, dt.datetime.now(dt.UTC), 2)
    (folder / "ca.crt").write_bytes(pem_cert(cert))
    key_path = folder / "ca.key"
    key_path.write_bytes(pem_private(key))
    key_path.chmod(0o600)
    return folder, key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    admin, _, _ = _write_ca(root / "admin", "a")
    store = issue_service_certificate(admin, root / "store", LOOPBACK, days=2)
    gateway = issue_service_certificate(admin, root / "gateway", LOOPBACK, days=2)
    rogue_dir, rogue_key, rogue_cert = _write_ca(root / "rogue", "b")
    key, cert = make_service_cert(rogue_key, rogue_cert, LOOPBACK, days=2)
    (rogue_dir / "server.crt").write_bytes(pem_cert(cert))
    (rogue_dir / "server.key").write_bytes(pem_private(key))
    return Pki(
        admin,
        admin / "ca.crt",
        (store.cert, store.key),
        (gateway.cert, gateway.key),
        rogue_dir / "ca.crt",
        (rogue_dir / "server.crt", rogue_dir / "server.key"),
    )


def _start_gateway(
    root: Path, store_url: str, store_token: str, pki: Pki, store_ca: Path, keyring: Path
) -> LocalIndexService:
    return start_index_service(
        root,
        kek=secrets.token_bytes(32),  # the gateway's own (its audit log's anchor)
        extra_args=("--role", "gateway", "--store-url", store_url,
                    "--dcpe-key-file", str(keyring), "--no-text-queries"),
        env={"FEDEMBED_INDEX_STORE_TOKEN": store_token, "FEDEMBED_INDEX_STORE_CA": str(store_ca)},
        tls=pki.gateway_tls,
        ca_file=pki.ca,
    )  # fmt: skip


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Split]:
    root = tmp_path_factory.mktemp("split")
    keyring_path = root / "dcpe_keyring.json"
    keyring = DcpeKeyring.create(keyring_path, tenant="consortium", beta=0.05)
    store_token = secrets.token_urlsafe(24)
    store = start_index_service(
        root / "store", kek=secrets.token_bytes(32), extra_args=("--role", "store"),
        env={"FEDEMBED_INDEX_STORE_TOKEN": store_token}, tls=pki.store_tls, ca_file=pki.ca,
    )  # fmt: skip
    try:
        gateway = _start_gateway(
            root / "gateway", store.url, store_token, pki, pki.ca, keyring_path
        )
        try:
            with gateway.admin_client() as admin:
                admin.create_collection(COLLECTION, DIM, metric="l2", protection="dcpe")
                admin.create_collection(DOCS, 384, metric="l2", protection="dcpe")
                node = admin.issue_credential("node", "node-a", [COLLECTION, DOCS])
                partner = admin.issue_credential(
                    "partner", "insurer-x", [COLLECTION], vector_queries=True
                )
            yield Split(
                store, gateway, store_token, node.token, partner.token, keyring, pki, keyring_path
            )
        finally:
            gateway.stop()
    finally:
        store.stop()


def test_split_roles_search_dcpe_vectors_over_tls_end_to_end(split: Split) -> None:
    # Prepare: unit vectors and their DCPE ciphertexts, made on the node
    x = np.random.default_rng(0).standard_normal((100, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ciphertexts = ScaleAndPerturb(split.keyring.current()).encrypt(x).vectors
    ids = [f"d{i}" for i in range(100)]
    # Execute: node -> gateway (https) -> store (https), partner query the same way
    with split.gateway.gateway_client(split.node_token) as node:
        uploaded = node.upsert_documents(COLLECTION, ids, ciphertexts)
    with split.gateway.gateway_client(split.partner_token) as partner:
        answers = [partner.query(COLLECTION, vector=x[i], k=3) for i in range(10)]
    # Assert
    assert split.store.url.startswith("https://")
    assert split.gateway.url.startswith("https://")
    assert uploaded.inserted == 100
    assert [a.hits[0].doc_id for a in answers] == ids[:10]


def test_plain_http_to_the_tls_store_gets_no_answer(split: Split) -> None:
    # Prepare: the store's port, dialled without TLS
    plain = split.store.url.replace("https://", "http://")
    # Execute / Assert: no HTTP answer comes back (the store speaks TLS only)
    with pytest.raises(httpx.TransportError):
        httpx.get(plain + routes.HEALTH.path(), timeout=10)


def test_node_upload_with_the_kit_ca_reaches_the_tls_gateway(tmp_path: Path, split: Split) -> None:
    # Prepare: a node folder of three documents
    folder = tmp_path / "node-a"
    folder.mkdir()
    texts = ["statins and muscle pain", "malaria vaccine trials", "sleep and memory"]
    (folder / "documents.jsonl").write_text(
        "".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    (folder / "interactions.jsonl").write_text(
        json.dumps({"query_id": "q0", "query": texts[0], "doc_id": "doc0"}) + "\n"
    )
    # Execute: the CLI, trusting the consortium CA (a node kit's ca.crt)
    run = _fedembed(
        "node", "upload", "--data-dir", str(folder), "--gateway", split.gateway.url,
        "--collection", DOCS, "--node-id", "node-a", "--dcpe-keyring", str(split.keyring_path),
        "--ca", str(split.pki.ca), env={"FEDEMBED_NODE_TOKEN": split.node_token},
    )  # fmt: skip
    # Assert
    assert run.code == 0, run.err[-2000:]
    report = json.loads(run.out.strip().splitlines()[-1])
    assert (report["inserted"], report["protection"]) == (3, "dcpe")


@pytest.mark.parametrize("trust", ["system", "rogue"])
def test_a_client_without_the_consortium_ca_is_refused(split: Split, trust: str) -> None:
    # Prepare: a partner whose client trusts the system store, or another CA
    verify: str | bool = True if trust == "system" else str(split.pki.rogue_ca)
    # Execute
    with (
        GatewayClient(split.gateway.url, split.partner_token, verify=verify) as partner,
        pytest.raises(TlsTrustError) as refused,
    ):
        partner.query(COLLECTION, vector=np.ones(DIM), k=3)
    # Assert: a clear refusal naming the fix
    assert "is not trusted" in refused.value.problem
    assert "--ca" in refused.value.fix


class _Impostor:
    """A TLS server with another CA's certificate for 127.0.0.1; keeps what it decrypts."""

    def __init__(self, cert: Path, key: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.5)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            raw.settimeout(5)
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    while chunk := conn.recv(65536):
                        self.received += chunk
                        if b"\r\n\r\n" in self.received:
                            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                            break
            except (OSError, ssl.SSLError):
                raw.close()

    def __enter__(self) -> _Impostor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


def test_the_impostor_reads_the_token_of_a_client_that_trusts_its_ca(pki: Pki) -> None:
    # Prepare: the control for the next test: a client that trusts the impostor's CA
    token = secrets.token_urlsafe(24)
    with _Impostor(*pki.rogue_tls) as impostor:
        transport = ServiceTransport(
            f"https://127.0.0.1:{impostor.port}", token, verify=pki.rogue_ca
        )
        # Execute
        transport.send(routes.HEALTH)
        transport.close()
    # Assert: what it would have seen
    assert token.encode() in impostor.received


def test_gateway_refuses_a_store_impostor_and_sends_it_nothing(tmp_path: Path, pki: Pki) -> None:
    # Prepare: an impostor on the store's URL, with a certificate of another CA
    keyring = tmp_path / "dcpe_keyring.json"
    DcpeKeyring.create(keyring, tenant="consortium", beta=0.05)
    store_token = secrets.token_urlsafe(24)
    # Execute: the gateway trusts the consortium CA only
    with _Impostor(*pki.rogue_tls) as impostor, pytest.raises(FedembedError) as failed:
        _start_gateway(
            tmp_path / "gateway",
            f"https://127.0.0.1:{impostor.port}",
            store_token,
            pki,
            pki.ca,
            keyring,
        )
    # Assert: it stopped at start with a clear error, and the impostor read nothing
    log = failed.value.fix
    assert "is not trusted" in log
    assert "FEDEMBED_INDEX_STORE_CA" in log
    assert "Traceback" not in log
    assert impostor.connections >= 1
    assert store_token.encode() not in impostor.received
    assert bytes(impostor.received) == b""


def test_gateway_with_another_ca_for_the_real_store_does_not_start(
    tmp_path: Path, split: Split
) -> None:
    # Execute: the right store, the wrong CA
    with pytest.raises(FedembedError) as failed:
        _start_gateway(
            tmp_path / "gateway",
            split.store.url,
            split.store_token,
            split.pki,
            split.pki.rogue_ca,
            split.keyring_path,
        )
    # Assert
    assert "is not trusted" in failed.value.fix


@dataclass
class _Run:
    code: int
    out: str
    err: str = field(repr=False)


def _fedembed(*args: str, env: dict[str, str]) -> _Run:
    result = subprocess.run(
        [sys.executable, "-m", "fedembed", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        timeout=300,
        check=False,
    )
    return _Run(result.returncode, result.stdout, result.stderr)


TOKENS = {
    "FEDEMBED_INDEX_ADMIN_TOKEN": secrets.token_urlsafe(24),
    "FEDEMBED_INDEX_STORE_TOKEN": secrets.token_urlsafe(24),
}


def test_gateway_refuses_plain_http_to_a_store_on_another_host(tmp_path: Path) -> None:
    # Execute: a gateway told to reach its store in clear across the network
    run = _fedembed(
        "index", "serve", "--role", "gateway", "--data-dir", str(tmp_path / "gw"),
        "--store-url", "http://10.20.30.40:8200", "--no-text-queries", env=TOKENS,
    )  # fmt: skip
    # Assert: refused at start, saying why and what to do
    assert run.code == 2
    assert "plain http:// to another host" in run.err
    assert "--tls-cert" in run.err
    assert "Traceback" not in run.err


def test_serve_refuses_a_tls_key_that_others_can_read(tmp_path: Path, pki: Pki) -> None:
    # Prepare: a copy of the store's key, readable by everyone
    key = tmp_path / "server.key"
    key.write_bytes(pki.store_tls[1].read_bytes())
    key.chmod(0o644)
    # Execute
    run = _fedembed(
        "index", "serve", "--role", "store", "--data-dir", str(tmp_path / "store"),
        "--tls-cert", str(pki.store_tls[0]), "--tls-key", str(key), env=TOKENS,
    )  # fmt: skip
    # Assert
    assert run.code == 2
    assert f"chmod 600 {key}" in run.err
    assert "Traceback" not in run.err


def test_serve_refuses_a_key_that_is_not_the_certificates(tmp_path: Path, pki: Pki) -> None:
    # Execute: the gateway's key with the store's certificate
    run = _fedembed(
        "index", "serve", "--role", "store", "--data-dir", str(tmp_path / "store"),
        "--tls-cert", str(pki.store_tls[0]), "--tls-key", str(pki.gateway_tls[1]), env=TOKENS,
    )  # fmt: skip
    # Assert
    assert run.code == 2
    assert "cannot be served" in run.err
    assert "Traceback" not in run.err


def test_tls_cert_names_every_host_and_is_signed_by_the_consortium_ca(
    tmp_path: Path, pki: Pki
) -> None:
    # Execute
    out = tmp_path / "store-cert"
    run = _fedembed(
        "index", "tls-cert", "--ca-dir", str(pki.admin), "--out", str(out),
        "--host", "index-store", "--host", "10.0.0.5", env={},
    )  # fmt: skip
    # Assert: the names clients dial, the CA that signed it, a private key file
    assert run.code == 0, run.err
    cert = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["index-store"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert (out / "server.key").stat().st_mode & 0o777 == 0o600
    assert (out / "ca.crt").read_bytes() == pki.ca.read_bytes()


@pytest.mark.parametrize(
    ("url", "with_ca", "accepted"),
    [
        ("http://127.0.0.1:8200", False, True),
        ("http://localhost:8200", False, True),
        ("http://[::1]:8200", False, True),
        ("https://store.example.org:8200", False, True),
        ("https://10.0.0.5:8200", True, True),
        ("http://10.0.0.5:8200", False, False),
        ("http://store.example.org", False, False),
        ("http://127.0.0.1.example.org:8200", False, False),
        ("http://localhost.example.org:8200", False, False),
        ("http://127.0.0.1:8200", True, False),
        ("ftp://127.0.0.1:8200", False, False),
    ],
)
def test_gateway_settings_accept_plain_http_only_on_loopback(
    tmp_path: Path, url: str, with_ca: bool, accepted: bool
) -> None:
    # Prepare
    fields = {
        "role": "gateway",
        "data_dir": tmp_path,
        "admin_token": TOKENS["FEDEMBED_INDEX_ADMIN_TOKEN"],
        "store_token": TOKENS["FEDEMBED_INDEX_STORE_TOKEN"],
        "store_url": url,
        "store_ca": tmp_path / "ca.crt" if with_ca else None,
    }
    # Execute
    try:
        ServiceSettings.model_validate(fields)
        problem = ""
    except ValidationError as exc:
        problem = str(exc)
    # Assert
    assert (problem == "") == accepted, problem
    if not accepted:
        assert "FEDEMBED_INDEX_STORE" in problem
