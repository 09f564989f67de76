"""A collection records the encoder space of its vectors and refuses vectors of another.

(HNSW collections in their spec, CKKS collections per block in their manifest.)

The party who would mix them is a node uploading with another ``--encoder-backend``
(int8 vectors are only cosine 0.94-0.96 to fp32 ones): its upload is refused, nothing of
it is stored, and the recorded space survives a crash (log replay) and a snapshot.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from crypto.ckks_search import CkksDocumentEncryptor
from crypto.ckks_search_key import CkksSearchKey
from index_client.vector_space import VectorSpace
from secure_index.errors import RequestError, VectorSpaceError
from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.collection_space import (
    check_query_space,
    check_upload_space,
    parse_space,
)
from secure_index.index.hnsw_collection import CollectionSpec
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks

DIM = 16
MODEL = hashlib.sha256(b"all-MiniLM-L6-v2").hexdigest()


def _space(backend: str, model: str = MODEL) -> VectorSpace:
    return VectorSpace(hashlib.sha256(f"{model}|{backend}".encode()).hexdigest(), backend, model)


TORCH, INT8 = _space("torch"), _space("onnx-int8")


def _unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


@pytest.fixture
def keks(tmp_path: Path) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path / "kek.json")


def _store(root: Path, keks: KeyFileKeks) -> IndexStore:
    return IndexStore(root, keks=keks, tenant="t", background=False)


def _upload(store: IndexStore, first: int, space: VectorSpace | None, name: str = "docs") -> None:
    ids = [f"n1:{i}" for i in range(first, first + 5)]
    store.upsert(name, ids, _unit(5, first), owner="n1", space=space)


def test_the_first_upload_records_its_space_and_another_space_is_refused(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", DIM))
    _upload(store, 0, INT8)
    # Execute
    with pytest.raises(VectorSpaceError) as refused:
        _upload(store, 5, TORCH)
    # Assert
    error = refused.value
    assert "'docs' holds onnx-int8 vectors" in error.problem
    assert "this upload holds torch vectors" in error.problem
    assert "encoder backend onnx-int8" in error.expected
    assert "--encoder-backend onnx-int8" in error.fix
    assert store.stats("docs").documents == 5  # nothing of the refused batch was stored
    assert store.spec("docs").vector_space == INT8
    _upload(store, 10, INT8)  # the same space goes on
    assert store.stats("docs").documents == 10
    store.close()


def test_a_client_that_names_no_space_cannot_add_to_an_int8_collection(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", DIM))
    _upload(store, 0, INT8)
    # Execute / Assert: an old client made torch vectors
    with pytest.raises(VectorSpaceError, match="vectors that name no encoder space"):
        _upload(store, 5, None)
    store.close()


def test_an_old_collection_is_the_torch_space_of_its_model(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare: filled by clients that named no space (before spaces were recorded)
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", DIM))
    _upload(store, 0, None)
    assert store.spec("docs").vector_space is None
    # Execute
    with pytest.raises(VectorSpaceError, match="before encoder spaces were recorded"):
        _upload(store, 5, INT8)
    _upload(store, 10, TORCH)
    # Assert: a torch upload joins it and records its space from then on
    assert store.spec("docs").vector_space == TORCH
    assert store.stats("docs").documents == 10
    assert store.stats("docs").encoder_backend == "torch"
    _upload(store, 20, None)  # old torch clients still fit a torch collection
    store.close()


def test_the_recorded_space_survives_a_crash_and_a_snapshot(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", DIM))
    store.create_collection(CollectionSpec("kept", DIM))
    _upload(store, 0, INT8)
    _upload(store, 0, TORCH, name="kept")
    store.snapshot("kept")
    # Execute: "docs" only in the log (as after a crash), "kept" in a snapshot
    store.close(snapshot=False)
    reopened = _store(tmp_path / "idx", keks)
    # Assert
    assert reopened.spec("docs").vector_space == INT8
    assert reopened.spec("kept").vector_space == TORCH
    with pytest.raises(VectorSpaceError):
        _upload(reopened, 5, TORCH)
    with pytest.raises(VectorSpaceError):
        _upload(reopened, 5, INT8, name="kept")
    reopened.close()


def test_another_model_is_another_space_even_with_the_same_backend() -> None:
    # Prepare
    spec = CollectionSpec("docs", DIM, **TORCH.as_fields())
    other = _space("torch", hashlib.sha256(b"another model").hexdigest())
    # Execute / Assert
    with pytest.raises(VectorSpaceError):
        check_upload_space(spec, other, populated=True)
    with pytest.raises(VectorSpaceError):
        check_query_space(spec, other, populated=True)
    check_query_space(spec, TORCH, populated=True)


def test_text_queries_on_an_old_collection_need_a_torch_gateway() -> None:
    # Prepare
    old = CollectionSpec("docs", DIM)
    # Execute / Assert
    with pytest.raises(VectorSpaceError) as refused:
        check_query_space(old, INT8, populated=True)
    assert "FEDEMBED_INDEX_ENCODER_BACKEND=torch" in refused.value.fix
    check_query_space(old, TORCH, populated=True)
    check_query_space(old, INT8, populated=False)  # nothing in it to mix with


def test_a_partial_space_in_a_request_is_a_request_error() -> None:
    # Execute / Assert
    with pytest.raises(RequestError, match="model_fingerprint missing"):
        parse_space({"space": INT8.space, "encoder_backend": "onnx-int8"})
    assert parse_space({"ids": ["a"]}) is None
    with pytest.raises(RequestError, match="malformed vector space"):
        CollectionSpec("docs", DIM, space=INT8.space)


def test_a_ckks_block_of_another_space_is_refused_and_the_spaces_persist(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare: CKKS collections record the space of each block in their sealed manifest
    key = CkksSearchKey.generate(dimension=DIM)
    encryptor = CkksDocumentEncryptor(key.public_context(), dimension=DIM)
    store = CkksCollections(tmp_path / "ckks", keks=keks, tenant="t")
    store.create("sealed", dimension=DIM, evaluation_context=key.evaluation_context())
    block = encryptor.encrypt_block(_unit(4, 0).astype(np.float64))
    store.put_block("sealed", "n1", 0, [f"n1:{i}" for i in range(4)], block, space=INT8)
    # Execute
    with pytest.raises(VectorSpaceError, match="'sealed' holds onnx-int8 vectors"):
        store.put_block("sealed", "n2", 0, [f"n2:{i}" for i in range(4)], block, space=TORCH)
    with pytest.raises(VectorSpaceError, match="vectors that name no encoder space"):
        store.put_block("sealed", "n2", 0, [f"n2:{i}" for i in range(4)], block)
    store.put_block("sealed", "n1", 0, [f"n1:{i}" for i in range(4)], block, space=TORCH)
    reopened = CkksCollections(tmp_path / "ckks", keks=keks, tenant="t")
    # Assert: its owner may replace its only block with another space (nothing to mix
    # with); the other node's were refused; the manifest keeps the space across a restart
    info = reopened.info("sealed")
    assert (info.blocks, info.space, info.encoder_backend) == (1, TORCH.space, "torch")
    with pytest.raises(VectorSpaceError):
        reopened.put_block("sealed", "n2", 0, [f"n2:{i}" for i in range(4)], block, space=INT8)
