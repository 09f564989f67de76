"""Vectors of two encoder spaces never meet in a collection, over the real HTTP services.

The parties who would mix them: a node uploading with another ``--encoder-backend``
than the collection's first uploads (refused by the store behind a split gateway, 409,
in the service's error body), and a gateway whose text-query encoder is of another
space than a collection's vectors (its text queries are refused, 409, never a 500;
served when the spaces match).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pytest

from crypto.ckks_search import CkksDocumentEncryptor
from crypto.ckks_search_key import CkksSearchKey
from embedding_core.encoder import Encoder
from index_client import AdminClient, ConflictError, GatewayClient
from index_client.vector_space import VectorSpace
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import CredentialStore
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.gateway_ckks import CkksGatewaySearch
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.store_app import create_store_app
from secure_index.service.store_backend import RemoteStore, StoreBackend
from tests.serving import serving

ADMIN = "admin-token-" + "a" * 32
STORE_TOKEN = "store-token-" + "s" * 32
DIM = 16
MODEL = hashlib.sha256(b"all-MiniLM-L6-v2").hexdigest()


def _space(backend: str, model: str = MODEL) -> VectorSpace:
    return VectorSpace(hashlib.sha256(f"{model}|{backend}".encode()).hexdigest(), backend, model)


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


@contextmanager
def _gateway(
    tmp_path: Path,
    backend: StoreBackend,
    embedder: QueryEmbedder,
    ckks: CkksGatewaySearch | None = None,
) -> Iterator[str]:
    keks = KeyFileKeks.load(tmp_path / "kek.json")
    app = create_gateway_app(
        backend=backend,
        credentials=CredentialStore(tmp_path / "credentials.sqlite"),
        audit=AuditLog(tmp_path / "audit" / "audit.jsonl", keks=keks),
        embedder=embedder,
        admin_token=ADMIN,
        limits=GatewayLimits(
            max_body_bytes=1 << 20, max_batch=100, max_k=10, max_block_bytes=256 << 20
        ),
        ckks=ckks,
    )
    with serving(app) as url:
        yield url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IndexStore]:
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    with IndexStore(tmp_path / "store", keks=keks, tenant="t", background=False) as opened:
        yield opened


def test_a_node_of_another_backend_is_refused_by_the_store_behind_a_split_gateway(
    tmp_path: Path, store: IndexStore
) -> None:
    # Prepare: store and gateway apart (the space travels gateway -> store and back)
    with ExitStack() as stack:
        store_url = stack.enter_context(
            serving(create_store_app(store, token=STORE_TOKEN, max_body_bytes=1 << 20))
        )
        remote = RemoteStore(store_url, token=STORE_TOKEN)
        stack.callback(remote.close)
        url = stack.enter_context(_gateway(tmp_path, remote, QueryEmbedder(None)))
        with AdminClient(url, ADMIN) as admin:
            admin.create_collection("claims", DIM)
            int8_node = admin.issue_credential("node", "node-a", ["claims"])
            torch_node = admin.issue_credential("node", "node-b", ["claims"])
        with GatewayClient(url, int8_node.token) as node_a:
            node_a.upsert_documents(
                "claims", [f"a:{i}" for i in range(8)], _unit(8, DIM, 0), space=_space("onnx-int8")
            )
        # Execute
        with GatewayClient(url, torch_node.token) as node_b:
            with pytest.raises(ConflictError) as refused:
                node_b.upsert_documents(
                    "claims", [f"b:{i}" for i in range(8)], _unit(8, DIM, 1), space=_space("torch")
                )
            described = node_b.describe("claims")
    # Assert: what, expected, fix, in the service's error format; nothing stored
    error = refused.value
    assert error.status == 409
    assert "'claims' holds onnx-int8 vectors" in error.problem
    assert "this upload holds torch vectors" in error.problem
    assert "encoder backend onnx-int8" in error.expected
    assert "--encoder-backend onnx-int8" in error.fix
    assert described.space == _space("onnx-int8")
    assert described.documents == 8
    assert store.spec("claims").vector_space == _space("onnx-int8")


def test_an_int8_gateway_refuses_text_queries_on_torch_vectors_and_serves_its_own(
    tmp_path: Path, store: IndexStore
) -> None:
    # Prepare: an onnx-int8 query encoder (lazy: its space costs no model load) and two
    # collections of the same model, one filled by torch nodes, one by onnx-int8 nodes
    encoder = Encoder.load(backend="onnx-int8")
    embedder = QueryEmbedder(encoder)
    own = embedder.vector_space
    assert own is not None
    torch_space = VectorSpace.of(Encoder.load(backend="torch"))
    dim = encoder.dimension
    with _gateway(tmp_path, store, embedder) as url:
        with AdminClient(url, ADMIN) as admin:
            for name in ("torch-docs", "int8-docs"):
                admin.create_collection(name, dim)
            node = admin.issue_credential("node", "node-a", ["torch-docs", "int8-docs"])
            partner = admin.issue_credential("partner", "p", ["torch-docs", "int8-docs"])
        with GatewayClient(url, node.token) as client:
            ids = [f"a:{i}" for i in range(6)]
            client.upsert_documents("torch-docs", ids, _unit(6, dim, 0), space=torch_space)
            client.upsert_documents("int8-docs", ids, _unit(6, dim, 1), space=own)
        # Execute
        with GatewayClient(url, partner.token) as client:
            with pytest.raises(ConflictError) as refused:
                client.query("torch-docs", "aspirin after a heart attack", k=3)
            served = client.query("int8-docs", "aspirin after a heart attack", k=3)
    # Assert
    error = refused.value
    assert error.status == 409
    assert "'torch-docs' holds torch vectors" in error.problem
    assert "embeds text as onnx-int8 vectors" in error.problem
    assert "FEDEMBED_INDEX_ENCODER_BACKEND=torch" in error.fix
    assert len(served.hits) == 3
    assert {h.doc_id for h in served.hits} <= set(ids)


def test_text_queries_on_ckks_blocks_of_another_space_are_refused(
    tmp_path: Path, store: IndexStore
) -> None:
    # Prepare: CKKS blocks a torch node encrypted, a gateway that embeds as onnx-int8
    embedder = QueryEmbedder(Encoder.load(backend="onnx-int8"))
    torch_space = VectorSpace.of(Encoder.load(backend="torch"))
    key = CkksSearchKey.generate(dimension=DIM)  # refused before anything is embedded
    ckks = CkksGatewaySearch(key, store.ckks_collections())
    with _gateway(tmp_path, store, embedder, ckks) as url:
        with AdminClient(url, ADMIN) as admin:
            admin.create_ckks_collection("sealed")
            node = admin.issue_credential("node", "node-a", ["sealed"])
            partner = admin.issue_credential("partner", "p", ["sealed"])
        with GatewayClient(url, node.token) as client:
            encryptor = CkksDocumentEncryptor(client.ckks_public_context(), dimension=DIM)
            block = encryptor.encrypt_block(_unit(3, DIM, 0).astype(np.float64))
            client.upload_block("sealed", 0, ["a:0", "a:1", "a:2"], block, space=torch_space)
            described = client.describe("sealed")
        # Execute
        with GatewayClient(url, partner.token) as client, pytest.raises(ConflictError) as refused:
            client.query("sealed", "aspirin after a heart attack", k=3)
    # Assert
    assert described.space == torch_space
    assert refused.value.status == 409
    assert "'sealed' holds torch vectors" in refused.value.problem
    assert "FEDEMBED_INDEX_ENCODER_BACKEND=torch" in refused.value.fix
