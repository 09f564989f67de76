"""A released adapter promoted to a running gateway: text rankings change at once, without
a restart, the promotion survives one, is audited, and a wrong hash, another base model or
malformed files are refused with a 4xx that changes nothing."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from embedding_core.adapter import MANIFEST_FILE, WEIGHTS_FILE, Adapter
from embedding_core.encoder import Encoder
from index_client import AuthenticationError, RequestRejectedError
from index_client.admin_client import AdminClient
from index_client.vector_space import VectorSpace
from secure_index.service.local_service import LocalIndexService, start_index_service
from secure_index.service.settings import audit_path

DIM = 384  # the bundled all-MiniLM-L6-v2
COLLECTION = "claims"
DOCS = 8
QUERY = "water damage to the kitchen floor"


@dataclass
class Gateway:
    service: LocalIndexService
    partner_token: str
    ids: list[str]
    vectors: np.ndarray


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One text-query gateway (the encoder loads once) shared by the module's tests."""
    service = start_index_service(
        tmp_path_factory.mktemp("gateway") / "svc", kek=secrets.token_bytes(32)
    )
    vectors = np.random.default_rng(7).standard_normal((DOCS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    shared = Gateway(service, "", [f"doc-{i}" for i in range(DOCS)], vectors)
    try:
        with service.admin_client() as admin:
            admin.create_collection(COLLECTION, DIM)
            node = admin.issue_credential("node", "node-a", [COLLECTION])
            partner = admin.issue_credential("partner", "insurer-x", [COLLECTION], top_k_cap=DOCS)
        with service.gateway_client(node.token) as client:
            client.upsert_documents(
                COLLECTION, shared.ids, vectors, space=VectorSpace.of(Encoder.load())
            )  # the gateway's default space: partners query it as text
        shared.partner_token = partner.token
        yield shared
    finally:
        shared.service.stop()


def _ranking(service: LocalIndexService, token: str) -> list[str]:
    with service.gateway_client(token) as client:
        return [hit.doc_id for hit in client.query(COLLECTION, QUERY, k=DOCS).hits]


def _release(
    folder: Path, *, toward: np.ndarray, fingerprint: str, side: str = "query"
) -> tuple[str, str]:
    """A shift adapter that moves every query onto ``toward``; its two SHA-256."""
    adapter = Adapter(DIM, kind="shift", side=side)
    assert adapter.shift is not None
    with torch.no_grad():
        adapter.shift.copy_(torch.from_numpy(50.0 * toward))
    adapter.save(folder, base_model_id="all-MiniLM-L6-v2", base_model_fingerprint=fingerprint)
    manifest, weights = (folder / MANIFEST_FILE).read_bytes(), (folder / WEIGHTS_FILE).read_bytes()
    return hashlib.sha256(manifest).hexdigest(), hashlib.sha256(weights).hexdigest()


def _fingerprint(admin: AdminClient) -> str:
    fingerprint = admin.current_adapter().encoder_fingerprint
    assert fingerprint is not None
    return fingerprint


def test_a_promoted_adapter_changes_rankings_without_restart_and_survives_one(
    gateway: Gateway, tmp_path: Path
) -> None:
    # Prepare: the ranking before, and an adapter that pulls queries onto its last document
    service = gateway.service
    pid = service.process.pid
    before = _ranking(service, gateway.partner_token)
    target = before[-1]
    with service.admin_client() as admin:
        manifest_sha, weights_sha = _release(
            tmp_path / "v1",
            toward=gateway.vectors[gateway.ids.index(target)],
            fingerprint=_fingerprint(admin),
        )
        # Execute
        served = admin.load_adapter(
            tmp_path / "v1", version="1", manifest_sha256=manifest_sha, weights_sha256=weights_sha
        )
    after = _ranking(service, gateway.partner_token)
    # Assert: the same process, a new ranking, the promotion audited
    assert service.process.poll() is None
    assert service.process.pid == pid
    assert (served.source, served.version, served.weights_sha256) == ("promoted", "1", weights_sha)
    assert after[0] == target != before[0]
    records = [json.loads(line) for line in audit_path(service.data_dir).read_text().splitlines()]
    promoted = [r for r in records if r["action"] == "promote-adapter"]
    assert [(r["decision"], r["detail"]["version"]) for r in promoted] == [("allow", "1")]
    # Execute: restart on the same data dir
    service.stop()
    gateway.service = restarted = start_index_service(
        service.data_dir, admin_token=service.admin_token, env=service.env
    )
    # Assert: the promoted adapter is served again
    with restarted.admin_client() as admin:
        again = admin.current_adapter()
    assert (again.source, again.version, again.manifest_sha256) == ("promoted", "1", manifest_sha)
    assert _ranking(restarted, gateway.partner_token) == after


def _refused(admin: AdminClient, folder: Path, manifest_sha: str, weights_sha: str) -> str:
    with pytest.raises(RequestRejectedError) as refused:
        admin.load_adapter(
            folder, version="2", manifest_sha256=manifest_sha, weights_sha256=weights_sha
        )
    assert refused.value.status == 422
    return refused.value.problem


def test_wrong_hashes_another_base_model_and_malformed_files_are_refused(
    gateway: Gateway, tmp_path: Path
) -> None:
    # Prepare
    service = gateway.service
    before = _ranking(service, gateway.partner_token)
    toward = gateway.vectors[gateway.ids.index(before[-1])]
    with service.admin_client() as admin:
        fingerprint = _fingerprint(admin)
        served = admin.current_adapter()
        good = tmp_path / "good"
        manifest_sha, weights_sha = _release(good, toward=toward, fingerprint=fingerprint)
        other = tmp_path / "other-base"
        other_shas = _release(other, toward=toward, fingerprint="0" * 64)
        both = tmp_path / "both-sides"
        both_shas = _release(both, toward=toward, fingerprint=fingerprint, side="both")
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / MANIFEST_FILE).write_text("{not json")
        (broken / WEIGHTS_FILE).write_bytes((good / WEIGHTS_FILE).read_bytes())
        broken_shas = [
            hashlib.sha256((broken / f).read_bytes()).hexdigest()
            for f in (MANIFEST_FILE, WEIGHTS_FILE)
        ]
        # Execute
        problems = [
            _refused(admin, good, manifest_sha, hashlib.sha256(b"other").hexdigest()),
            _refused(admin, good, hashlib.sha256(b"other").hexdigest(), weights_sha),
            _refused(admin, other, *other_shas),
            _refused(admin, both, *both_shas),
            _refused(admin, broken, *broken_shas),
        ]
        state = admin.current_adapter()
    with (
        pytest.raises(AuthenticationError),
        AdminClient(service.url, gateway.partner_token) as partner,
    ):
        partner.load_adapter(good, version="3", manifest_sha256=manifest_sha,
                             weights_sha256=weights_sha)  # fmt: skip
    # Assert: each refusal says why; nothing changed
    assert "adapter.safetensors does not match" in problems[0]
    assert "adapter.json does not match" in problems[1]
    assert "another base model" in problems[2]
    assert "documents too" in problems[3]
    assert "not a fedembed adapter" in problems[4]
    assert state == served
    assert _ranking(service, gateway.partner_token) == before
