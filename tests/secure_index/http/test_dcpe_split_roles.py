"""DCPE end to end with the gateway and the store in separate processes: the node
encrypts before upload, the gateway encrypts queries, the store only holds ciphertexts."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import numpy as np
import pytest

from crypto.dcpe import ScaleAndPerturb
from crypto.dcpe_keys import DcpeKeyring
from secure_index.index.index_store import IndexStore
from secure_index.sealing import EnvKeks
from secure_index.service.local_service import start_index_service
from secure_index.service.settings import STORE_DIR

DIM = 16


def test_dcpe_collection_through_split_gateway_and_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the tenant keyring (nodes and gateway share it), store and gateway processes
    keyring_path = tmp_path / "dcpe_keyring.json"
    keyring = DcpeKeyring.create(keyring_path, tenant="consortium", beta=0.05)
    store_token, kek = secrets.token_urlsafe(24), secrets.token_bytes(32)
    store = start_index_service(
        tmp_path / "store", kek=kek, extra_args=("--role", "store"),
        env={"FEDEMBED_INDEX_STORE_TOKEN": store_token},
    )  # fmt: skip
    try:
        gateway = start_index_service(
            tmp_path / "gateway",
            extra_args=("--role", "gateway", "--store-url", store.url,
                        "--dcpe-key-file", str(keyring_path), "--no-text-queries"),
            env={"FEDEMBED_INDEX_STORE_TOKEN": store_token},
        )  # fmt: skip
        try:
            with gateway.admin_client() as admin:
                created = admin.create_collection("enc", DIM, metric="l2", protection="dcpe")
                node = admin.issue_credential("node", "node-a", ["enc"])
                partner = admin.issue_credential("partner", "p", ["enc"], vector_queries=True)
            x = np.random.default_rng(0).standard_normal((200, DIM)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            ciphertexts = ScaleAndPerturb(keyring.current()).encrypt(x).vectors  # on the node
            # Execute
            with gateway.gateway_client(node.token) as c:
                uploaded = c.upsert_documents("enc", [f"d{i}" for i in range(200)], ciphertexts)
            with gateway.gateway_client(partner.token) as c:
                answers = [c.query("enc", vector=x[i], k=3) for i in range(20)]
        finally:
            gateway.stop()
    finally:
        store.stop()
    # Assert: search works on ciphertexts
    assert (created.protection, created.metric) == ("dcpe", "l2")
    assert uploaded.inserted == 200
    top1 = [a.hits[0].doc_id for a in answers]
    assert top1 == [f"d{i}" for i in range(20)]
    # ... and the store holds only ciphertexts (scaled by s >= 1, perturbed), never x
    monkeypatch.setenv("FEDEMBED_INDEX_KEK", base64.b64encode(kek).decode())
    with IndexStore(
        tmp_path / "store" / STORE_DIR,
        keks=EnvKeks.from_env(),
        tenant="consortium",
        background=False,
    ) as offline:
        collection = offline._get("enc").collection
        stored = np.asarray(collection._index.get_items(list(range(200))), dtype=np.float32)
    scale = keyring.current().scaling_factor
    assert np.allclose(np.linalg.norm(stored, axis=1), scale, rtol=0.05)
    assert np.abs(stored - x).max() > 0.5
