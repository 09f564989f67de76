"""CKKS collections: blocks persist sealed, ownership holds, scores decrypt at the gateway;
one name space with the HNSW collections, failed creates leave nothing, a broken
collection is reported alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tenseal as ts

from crypto.ckks_search import CkksDocumentEncryptor
from crypto.ckks_search_key import CkksSearchKey
from crypto.errors import KeyManagementError
from secure_index.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    CollectionUnavailableError,
    IntegrityError,
    OwnershipError,
    RequestError,
)
from secure_index.index.ckks_collections import (
    EVALUATION_FILE,
    KIND_EVALUATION,
    METRIC,
    CkksCollections,
)
from secure_index.index.hnsw_collection import CollectionSpec
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.sealing.sealed_file import SealedContext, open_sealed
from tests.secure_index.kms_outage import KmsOutage

TENANT = "consortium"
DIM = 12


@pytest.fixture(scope="module")
def key() -> CkksSearchKey:
    return CkksSearchKey.generate(dimension=DIM)


@pytest.fixture
def keks(tmp_path: Path) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path / "kek.json")


def _unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM))
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


def _ranked(store: CkksCollections, key: CkksSearchKey, q: np.ndarray, **kw: str) -> list[str]:
    blocks = store.score("c", key.encrypt_query(q), **kw)
    scores = key.decrypt_scores([b.answer for b in blocks], [len(b.ids) for b in blocks])
    ids = [i for b in blocks for i in b.ids]
    return [ids[j] for j in np.argsort(-scores)]


def test_blocks_survive_a_restart_and_score_like_plaintext(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey
) -> None:
    # Prepare
    encryptor = CkksDocumentEncryptor(key.public_context(), dimension=DIM)
    a, b = _unit(30, 1), _unit(20, 2)
    root = tmp_path / "ckks"
    store = CkksCollections(root, keks=keks, tenant=TENANT)
    store.create("c", dimension=DIM, evaluation_context=key.evaluation_context())
    store.put_block("c", "node-a", 0, [f"a{i}" for i in range(30)], encryptor.encrypt_block(a))
    store.put_block("c", "node-b", 0, [f"b{i}" for i in range(20)], encryptor.encrypt_block(b))
    # Execute
    reopened = CkksCollections(root, keks=keks, tenant=TENANT)
    ranked = _ranked(reopened, key, a[3])
    only_b = _ranked(reopened, key, a[3], owner="node-b")
    info = reopened.info("c")
    # Assert
    truth = np.argsort(-np.vstack([a, b]) @ a[3])
    names = [f"a{i}" for i in range(30)] + [f"b{i}" for i in range(20)]
    assert ranked == [names[j] for j in truth]
    assert set(only_b) == {f"b{i}" for i in range(20)}
    assert (info.documents, info.blocks) == (50, 2)
    assert reopened.names() == ["c"]


def test_the_stored_evaluation_context_cannot_decrypt(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey
) -> None:
    store = CkksCollections(tmp_path / "ckks", keks=keks, tenant=TENANT)
    store.create("c", dimension=DIM, evaluation_context=key.evaluation_context())
    expected = SealedContext(
        tenant=TENANT, collection="c", kind=KIND_EVALUATION, dimension=DIM, metric=METRIC
    )
    path = tmp_path / "ckks" / "c" / EVALUATION_FILE
    with open_sealed(path, expected=expected, keks=keks) as reader:
        context = ts.context_from(bytes(reader.read()))
    assert not context.is_private()
    raw = path.read_bytes()
    assert key.evaluation_context()[:4096] not in raw  # sealed at rest, not plain
    with pytest.raises(IntegrityError):
        open_sealed(path, expected=expected, keks=KeyFileKeks.create(tmp_path / "other.json"))


def test_replace_delete_and_ownership(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey
) -> None:
    # Prepare
    encryptor = CkksDocumentEncryptor(key.public_context(), dimension=DIM)
    store = CkksCollections(tmp_path / "ckks", keks=keks, tenant=TENANT)
    store.create("c", dimension=DIM, evaluation_context=key.evaluation_context())
    block = encryptor.encrypt_block(_unit(3, 3))
    store.put_block("c", "node-a", 0, ["x", "y", "z"], block)
    # Execute / Assert: an idempotent replace keeps the count
    assert store.put_block("c", "node-a", 0, ["x", "y", "z"], block).documents == 3
    with pytest.raises(OwnershipError, match="node-a"):
        store.put_block("c", "node-b", 0, ["x", "q", "r"], block)
    with pytest.raises(RequestError, match="already in block 0"):
        store.put_block("c", "node-a", 1, ["z", "q", "r"], block)
    with pytest.raises(RequestError, match="distinct"):
        store.put_block("c", "node-a", 1, ["q", "q", "r"], block)
    with pytest.raises(RequestError, match="3 documents"):
        store.put_block("c", "node-a", 1, ["q", "r"], block)
    with pytest.raises(RequestError, match="block number"):
        store.put_block("c", "node-a", -1, ["q", "r", "s"], block)
    assert not store.delete_block("c", "node-b", 0)  # node-b has no block 0
    assert store.delete_block("c", "node-a", 0)
    assert store.info("c").documents == 0
    assert store.score("c", key.encrypt_query(_unit(1, 4)[0])) == []
    assert CkksCollections(tmp_path / "ckks", keks=keks, tenant=TENANT).info("c").blocks == 0
    with pytest.raises(CollectionExistsError):
        store.create("c", dimension=DIM, evaluation_context=key.evaluation_context())
    with pytest.raises(CollectionNotFoundError, match="create it"):
        store.info("nope")
    with pytest.raises(RequestError, match="not allowed"):
        store.create("../x", dimension=DIM, evaluation_context=key.evaluation_context())


def test_one_name_space_for_every_collection_kind(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey
) -> None:
    # Prepare: a store with an HNSW collection and a CKKS collection
    root = tmp_path / "store"
    store = IndexStore(root, keks=keks, tenant=TENANT, background=False)
    ckks = store.ckks_collections()
    store.create_collection(CollectionSpec("claims", DIM))
    ckks.create("sealed", dimension=DIM, evaluation_context=key.evaluation_context())
    # Execute / Assert: in one process, both ways
    with pytest.raises(CollectionExistsError, match="at-rest or DCPE"):
        ckks.create("claims", dimension=DIM, evaluation_context=key.evaluation_context())
    with pytest.raises(CollectionExistsError, match="CKKS"):
        store.create_collection(CollectionSpec("sealed", DIM))
    store.close()
    # Execute / Assert: after a restart, before and without opening the CKKS side
    reopened = IndexStore(root, keks=keks, tenant=TENANT, background=False)
    with pytest.raises(CollectionExistsError, match="CKKS"):
        reopened.create_collection(CollectionSpec("sealed", DIM))
    reopened.close()
    alone = CkksCollections(root / "ckks", keks=keks, tenant=TENANT)  # opened on its own
    with pytest.raises(CollectionExistsError, match="at-rest or DCPE"):
        alone.create("claims", dimension=DIM, evaluation_context=key.evaluation_context())


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_failed_create_leaves_nothing(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey, fail_at: int
) -> None:
    kms = KmsOutage(keks, fail_at)
    store = CkksCollections(tmp_path / "ckks", keks=kms, tenant=TENANT)
    with pytest.raises(KeyManagementError):
        store.create("c", dimension=DIM, evaluation_context=key.evaluation_context())
    assert list((tmp_path / "ckks").iterdir()) == []
    kms.fail_at = 0
    store.create("c", dimension=DIM, evaluation_context=key.evaluation_context())
    assert CkksCollections(tmp_path / "ckks", keks=keks, tenant=TENANT).names() == ["c"]


def test_a_broken_collection_is_reported_and_the_others_are_served(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey
) -> None:
    # Prepare: two collections; one's evaluation context is damaged
    encryptor = CkksDocumentEncryptor(key.public_context(), dimension=DIM)
    store = CkksCollections(tmp_path / "ckks", keks=keks, tenant=TENANT)
    for name in ("good", "bad"):
        store.create(name, dimension=DIM, evaluation_context=key.evaluation_context())
        store.put_block(name, "node-a", 0, ["x", "y"], encryptor.encrypt_block(_unit(2, 5)))
        store.put_block(name, "node-a", 0, ["x", "y"], encryptor.encrypt_block(_unit(2, 6)))
    path = tmp_path / "ckks" / "bad" / EVALUATION_FILE
    damaged = bytearray(path.read_bytes())
    damaged[-100] ^= 1
    path.write_bytes(bytes(damaged))
    # Execute
    reopened = CkksCollections(tmp_path / "ckks", keks=keks, tenant=TENANT)
    # Assert: a replaced block left one file; "bad" is named with its problem
    assert len(list((tmp_path / "ckks" / "good" / "blocks").iterdir())) == 1
    assert reopened.names() == ["good"]
    assert reopened.info("good").documents == 2
    assert isinstance(reopened.broken()["bad"], IntegrityError)
    with pytest.raises(CollectionUnavailableError, match="'bad' is unavailable"):
        reopened.score("bad", key.encrypt_query(_unit(1, 4)[0]))
