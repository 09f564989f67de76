"""CKKS block writes through a real gateway are audited before they are made: each
acknowledged PUT and DELETE has its record, and when the audit record cannot be written
the node gets a 503 and the store is left as it was (no write without its record)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from crypto.ckks_search import CkksDocumentEncryptor
from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
from index_client import routes
from index_client.block_format import OCTET_STREAM, pack_block_upload
from secure_index.sealing import EnvKeks
from secure_index.service.audit_log import ids_digest, verify_audit_log
from secure_index.service.local_service import KEK_ENV, LocalIndexService, start_index_service
from secure_index.service.settings import audit_path

DIM = 16
SEALED = "sealed"


@dataclass
class CkksGateway:
    service: LocalIndexService
    node_token: str
    encryptor: CkksDocumentEncryptor

    def block(self, number: int, size: int) -> tuple[list[str], bytes]:
        vectors = np.random.default_rng(number).standard_normal((size, DIM))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"b{number}-{i}" for i in range(size)]
        return ids, pack_block_upload(ids, self.encryptor.encrypt_block(vectors))

    def put(self, number: int, body: bytes) -> int:
        with self.service.client(self.node_token) as node:
            path = routes.PUT_BLOCK.path(collection=SEALED, number=number)
            return node.put(path, content=body, headers={"Content-Type": OCTET_STREAM}).status_code

    def delete(self, number: int) -> int:
        with self.service.client(self.node_token) as node:
            return node.delete(
                routes.DELETE_BLOCK.path(collection=SEALED, number=number)
            ).status_code

    def documents(self) -> int:
        with self.service.client(self.node_token) as node:
            answer = node.get(routes.DESCRIBE_COLLECTION.path(collection=SEALED))
        assert answer.status_code == 200, answer.text
        documents = answer.json()["documents"]
        assert isinstance(documents, int)
        return documents

    def records(self) -> list[dict[str, object]]:
        lines = audit_path(self.service.data_dir).read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CkksGateway]:
    key = CkksSearchKey.generate(dimension=DIM)
    key_file = tmp_path / "ckks_search.key"
    save_ckks_key(key, key_file)
    kek = secrets.token_bytes(32)
    service = start_index_service(
        tmp_path / "svc",
        kek=kek,
        extra_args=("--no-text-queries", "--ckks-key-file", str(key_file)),
    )
    monkeypatch.setenv(KEK_ENV, base64.b64encode(kek).decode())  # verify_audit_log's KEK
    try:
        with service.admin_client() as admin:
            admin.create_ckks_collection(SEALED)
            node = admin.issue_credential("node", "node-a", [SEALED])
        encryptor = CkksDocumentEncryptor(key.public_context(), dimension=DIM)
        yield CkksGateway(service, node.token, encryptor)
    finally:
        service.stop()


class BrokenAuditFolder:
    """The audit folder replaced by a file: no anchor, hence no record, can be written."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = audit_path(data_dir).parent
        self.aside = self.folder.with_name("audit.aside")

    def __enter__(self) -> None:
        self.folder.rename(self.aside)
        self.folder.write_bytes(b"")

    def __exit__(self, *exc: object) -> None:
        self.folder.unlink()
        self.aside.rename(self.folder)


def test_each_acknowledged_block_write_has_its_record(gateway: CkksGateway) -> None:
    # Prepare
    ids, body = gateway.block(0, 5)
    # Execute
    put = gateway.put(0, body)
    deleted = gateway.delete(0)
    # Assert: one allow record per write, the put's naming its ids' digest
    upload, delete = [r for r in gateway.records() if r["decision"] == "allow"][-2:]
    assert (put, deleted) == (200, 200)
    assert (upload["action"], upload["collection"]) == ("upload", SEALED)
    assert upload["detail"] == {
        "name": "node-a", "block": 0, "items": 5, "ids_sha256": ids_digest(ids)
    }  # fmt: skip
    assert (delete["action"], delete["detail"]) == ("delete", {"name": "node-a", "block": 0})
    assert verify_audit_log(audit_path(gateway.service.data_dir), keks=EnvKeks.from_env()).ok


def test_a_write_whose_record_cannot_be_written_is_not_made(gateway: CkksGateway) -> None:
    # Prepare: block 0 stored; block 1 ready
    _, first = gateway.block(0, 5)
    assert gateway.put(0, first) == 200
    _, second = gateway.block(1, 7)
    records_before = len(gateway.records())
    # Execute: both writes while the audit log cannot be extended
    with BrokenAuditFolder(gateway.service.data_dir):
        put = gateway.put(1, second)
        deleted = gateway.delete(0)
    # Assert: refused, and the store still holds block 0 only, exactly as before
    assert (put, deleted) == (503, 503)
    assert gateway.documents() == 5
    assert len(gateway.records()) == records_before
    # and once the log can be written again the same writes go through, audited
    assert (gateway.put(1, second), gateway.delete(0)) == (200, 200)
    assert gateway.documents() == 7
    assert verify_audit_log(audit_path(gateway.service.data_dir), keks=EnvKeks.from_env()).ok
