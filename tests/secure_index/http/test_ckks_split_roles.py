"""CKKS search end to end, gateway and store in separate processes: nodes encrypt blocks
with the gateway's public context, the store scores encrypted text queries without any
decrypting key, the gateway decrypts and ranks; a store restart keeps everything."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import tenseal as ts

from client_node.index_upload import opaque_id
from embedding_core.encoder import Encoder
from index_client import routes
from secure_index.index.ckks_collections import EVALUATION_FILE, KIND_EVALUATION, METRIC
from secure_index.sealing import EnvKeks
from secure_index.sealing.sealed_file import SealedContext, open_sealed
from secure_index.service.local_service import LocalIndexService, start_index_service
from secure_index.service.settings import CKKS_DIR, STORE_DIR

SEALED = "sealed"
BLOCK_0 = routes.PUT_BLOCK.path(collection=SEALED, number=0)
TOPICS = [
    "insulin resistance in adipose tissue",
    "tumour suppressor genes in colon cancer",
    "antibiotic resistance of hospital bacteria",
    "sleep deprivation and memory consolidation",
    "vitamin D and bone density in the elderly",
    "gut microbiome diversity after antibiotics",
    "blood pressure response to salt intake",
    "malaria vaccine trials in children",
    "stem cell therapy for heart failure",
    "air pollution and childhood asthma",
    "statins and muscle pain",
    "influenza transmission in schools",
]


def _node_folder(root: Path, texts: list[str]) -> Path:
    root.mkdir(parents=True)
    with (root / "documents.jsonl").open("w", encoding="utf-8") as out:
        for i, text in enumerate(texts):
            out.write(json.dumps({"id": f"doc{i}", "text": text}) + "\n")
    with (root / "interactions.jsonl").open("w", encoding="utf-8") as out:
        out.write(json.dumps({"query_id": "q0", "query": texts[0], "doc_id": "doc0"}) + "\n")
    return root


def _fedembed(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "fedembed", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout.strip()
    return dict(json.loads(out if out.startswith("{\n") else out.splitlines()[-1]))


def _upload(url: str, name: str, folder: Path, token: str) -> dict[str, object]:
    args = ["node", "upload", "--data-dir", str(folder), "--gateway", url,
            "--collection", SEALED, "--node-id", name]  # fmt: skip
    return _fedembed(*args, env={"FEDEMBED_NODE_TOKEN": token})


def _start_store(path: Path, kek: bytes, token: str, port: int | None = None) -> LocalIndexService:
    return start_index_service(
        path,
        kek=kek,
        port=port,
        extra_args=("--role", "store"),
        env={"FEDEMBED_INDEX_STORE_TOKEN": token},
    )


@pytest.mark.slow  # minutes on 2 cores: `make test-all` runs it (benchmarks/RESULTS.md, CI row)
def test_ckks_collection_through_split_gateway_and_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the gateway's key, two nodes' folders, store and gateway processes
    key_file = tmp_path / "gateway-kit" / "ckks_search.key"
    key_file.parent.mkdir()
    _fedembed("index", "ckks-keygen", "--out", str(key_file))
    texts_a = [f"a study of {t}" for t in TOPICS[:8]]
    texts_b = [f"a review of {t}" for t in TOPICS[8:]]
    node_a = _node_folder(tmp_path / "node-a", texts_a)
    node_b = _node_folder(tmp_path / "node-b", texts_b)
    store_token, kek = secrets.token_urlsafe(24), secrets.token_bytes(32)
    store = _start_store(tmp_path / "store", kek, store_token)
    gateway = start_index_service(
        tmp_path / "gateway",
        extra_args=("--role", "gateway", "--store-url", store.url,
                    "--ckks-key-file", str(key_file)),
        env={"FEDEMBED_INDEX_STORE_TOKEN": store_token},
    )  # fmt: skip
    try:
        with gateway.admin_client() as admin:
            created = admin.create_ckks_collection(SEALED)
            tokens = {
                name: admin.issue_credential(
                    role, name, [SEALED], score_release="exact" if role == "partner" else None
                ).token
                for role, name in (("node", "node-a"), ("node", "node-b"), ("partner", "p"))
            }
        # Execute: each node uploads through the real CLI, a partner queries by text
        uploads = [_upload(gateway.url, name, folder, tokens[name]) for name, folder in (
            ("node-a", node_a), ("node-b", node_b))]  # fmt: skip
        queries = [f"{t}: new evidence" for t in TOPICS]
        with gateway.gateway_client(tokens["p"]) as partner:
            answers = [partner.query(SEALED, q, k=5) for q in queries]
            only_b = partner.query(SEALED, queries[0], k=5, owner="node-b")
            described = partner.describe(SEALED)
        with gateway.client(tokens["p"]) as raw_partner:  # mistakes, sent raw
            tagged = raw_partner.request(
                routes.QUERY.method,
                routes.QUERY.path(collection=SEALED),
                json={"text": queries[0], "k": 5, "filters": {"tags": ["x"]}},
            )
            partner_put = raw_partner.put(BLOCK_0, content=b"x")
        with gateway.client(tokens["node-a"]) as raw_node:
            malformed = raw_node.put(BLOCK_0, content=b"\x01\x02")
        with gateway.gateway_client(tokens["node-a"]) as node:
            public = node.ckks_public_context()
        store.stop()  # the store restarts from its sealed files, on the same port
        store = _start_store(tmp_path / "store", kek, store_token, port=urlsplit(store.url).port)
        with gateway.gateway_client(tokens["p"]) as partner:
            after_restart = partner.query(SEALED, queries[3], k=5)
    finally:
        gateway.stop()
        store.stop()
    # Assert: uploads landed as blocks, ranking equals plaintext cosine ranking
    assert (created.name, created.dimension, created.documents) == (SEALED, 384, 0)
    assert [u["protection"] for u in uploads] == ["ckks", "ckks"]
    assert [u["documents"] for u in uploads] == [8, 4]
    encoder = Encoder.load()
    docs = encoder.encode(texts_a + texts_b)
    expected = np.argsort(-(encoder.encode(queries) @ docs.T), axis=1)[:, :5]
    position = {
        opaque_id(name, f"doc{i}"): len(texts_a) * (name == "node-b") + i
        for name, texts in (("node-a", texts_a), ("node-b", texts_b))
        for i in range(len(texts))
    }
    got = [[position[doc_id] for doc_id in a.doc_ids] for a in answers]
    assert got == expected.tolist()
    # (fresh query encryption: the same ranking, scores equal up to CKKS noise)
    assert after_restart.doc_ids == answers[3].doc_ids
    np.testing.assert_allclose(
        [h.score for h in after_restart.hits], [h.score for h in answers[3].hits], atol=1e-5
    )
    cosine = encoder.encode(queries[:1]) @ docs.T
    assert abs(answers[0].hits[0].score - float(cosine.max())) < 1e-4
    assert {h.owner for h in only_b.hits} == {"node-b"}
    assert described.protection == "ckks"
    assert described.documents == 12
    assert tagged.status_code == 422
    assert partner_put.status_code == 403
    assert malformed.status_code == 422
    assert "malformed" in malformed.json()["error"]["problem"]
    assert not ts.context_from(public).is_private()
    # ... and the store holds only sealed CKKS material, with no key that decrypts
    monkeypatch.setenv("FEDEMBED_INDEX_KEK", base64.b64encode(kek).decode())
    folder = tmp_path / "store" / STORE_DIR / CKKS_DIR / SEALED
    expected_context = SealedContext(
        tenant="consortium", collection=SEALED, kind=KIND_EVALUATION, dimension=384,
        metric=METRIC,
    )  # fmt: skip
    with open_sealed(
        folder / EVALUATION_FILE, expected=expected_context, keks=EnvKeks.from_env()
    ) as reader:
        assert not ts.context_from(bytes(reader.read())).is_private()
    assert len(list((folder / "blocks").glob("*.sealed"))) == 2
