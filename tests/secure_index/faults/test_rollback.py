"""The store host deletes or rolls back files: 13 of 13 tamper cases are refused or
recovered with nothing acknowledged lost.

Refused (a RollbackError names the collection, what is missing and how to restore):
1 delete the newest manifest (no anchor needed: the log no longer continues the
generation), 2 the same with the anchor, 3 cut the log at a record boundary, 4 zero its
last record, 5 cut its last record in half, 6 delete the log, 7 roll one collection back
to an older copy, 8 roll the whole store folder back (HNSW and CKKS), 9 delete a CKKS
block, 10 roll a CKKS block back, 11 roll the CKKS manifest back (with the blocks it
named), 12 delete the CKKS manifest. Recovered: 13 a block added to a CKKS folder is never
served (and removed). Also: a torn tail that was never acknowledged is a crash artefact
and is recovered; `fedembed index accept-rollback` re-anchors; SIGKILL under load with
the anchor loses no acknowledged insert and raises no false alarm.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from crypto.ckks_search import CkksDocumentEncryptor
from crypto.ckks_search_key import CkksSearchKey
from secure_index.errors import (
    CollectionUnavailableError,
    IntegrityError,
    RollbackError,
    StateAnchorError,
)
from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.hnsw_collection import CollectionSpec
from secure_index.index.index_store import IndexStore
from secure_index.sealing import EnvKeks, KeyFileKeks
from secure_index.service.local_service import start_index_service
from secure_index.storage.state_anchor import default_anchor_path

TENANT = "consortium"
DIM = 12


@pytest.fixture(scope="module")
def key() -> CkksSearchKey:
    return CkksSearchKey.generate(dimension=DIM)


@pytest.fixture
def keks(tmp_path: Path) -> KeyFileKeks:
    (tmp_path / "keys").mkdir()
    return KeyFileKeks.create(tmp_path / "keys" / "kek.json")


def _unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


def _open(root: Path, keks: KeyFileKeks, *, anchored: bool = True, **kw: object) -> IndexStore:
    anchor = default_anchor_path(keks.path, root) if anchored else None
    return IndexStore(
        root,
        keks=keks,
        tenant=TENANT,
        background=False,
        state_anchor=anchor,
        **kw,  # type: ignore[arg-type]
    )


def _batches(store: IndexStore, first: int, count: int, size: int = 10) -> list[int]:
    """Upsert ``count`` batches of ``size`` documents; the log's size after each ack."""
    sizes = []
    for b in range(first, first + count):
        ids = [f"d{b * size + i}" for i in range(size)]
        store.upsert("docs", ids, _unit(size, b), owner="node-a")
        sizes.append(_log_file(store.root).stat().st_size)
    return sizes


def _log_file(root: Path) -> Path:
    return sorted((root / "collections" / "docs" / "wal").glob("wal-*.log"))[-1]


def _refused(store: IndexStore, name: str, lost: str) -> RollbackError:
    error = store.broken()[name]
    assert isinstance(error, RollbackError)
    assert lost in error.problem
    assert f"accept-rollback --collection {name}" in error.fix
    assert "restore the newest backup" in error.fix
    return error


@pytest.mark.parametrize("anchored", [False, True], ids=["1-no-anchor", "2-anchor"])
def test_deleting_the_newest_manifest_is_refused(
    tmp_path: Path, keks: KeyFileKeks, anchored: bool
) -> None:
    # Prepare: 72 documents in generation 2, 20 more folded into generation 3
    root = tmp_path / "store"
    store = _open(root, keks, anchored=anchored)
    store.create_collection(CollectionSpec("docs", DIM))
    _batches(store, 0, 4, size=18)
    store.snapshot("docs")
    _batches(store, 10, 2)
    store.snapshot("docs")
    store.close(snapshot=False)
    # Execute: the host deletes the newest manifest
    (root / "collections" / "docs" / "manifest-000000000003.sealed").unlink()
    reopened = _open(root, keks, anchored=anchored)
    # Assert: not 72 documents silently, but an error naming the lost records
    _refused(reopened, "docs", "log records 5-6")
    with pytest.raises(CollectionUnavailableError, match="rolled back or lost data"):
        reopened.stats("docs")
    reopened.close()


@pytest.mark.parametrize(
    ("cut", "lost"),
    [("boundary", "log records 4-5"), ("zero", "log records 5-5"), ("half", "log records 5-5")],
    ids=["3-cut-at-boundary", "4-zero-last-record", "5-half-cut-last-record"],
)
def test_a_cut_or_torn_log_that_lost_acknowledged_records_is_refused(
    tmp_path: Path, keks: KeyFileKeks, cut: str, lost: str
) -> None:
    # Prepare: five acknowledged batches, only in the log
    root = tmp_path / "store"
    store = _open(root, keks)
    store.create_collection(CollectionSpec("docs", DIM))
    sizes = _batches(store, 0, 5)
    store.close(snapshot=False)
    log = _log_file(root)
    # Execute
    if cut == "boundary":
        os.truncate(log, sizes[2])
    elif cut == "zero":
        with log.open("r+b") as f:
            f.seek(sizes[3])
            f.write(bytes(sizes[4] - sizes[3]))
    else:
        os.truncate(log, (sizes[3] + sizes[4]) // 2)
    reopened = _open(root, keks)
    # Assert
    _refused(reopened, "docs", lost)
    reopened.close()


def test_a_torn_tail_never_acknowledged_is_recovered(tmp_path: Path, keks: KeyFileKeks) -> None:
    # Prepare: five anchored batches, then a sixth written past the anchor (as when the
    # process dies after the log's fsync and before the anchor and the acknowledgement)
    root = tmp_path / "store"
    store = _open(root, keks)
    store.create_collection(CollectionSpec("docs", DIM))
    sizes = _batches(store, 0, 5)
    store.close(snapshot=False)
    unanchored = _open(root, keks, anchored=False)
    sizes += _batches(unanchored, 5, 1)
    unanchored.close(snapshot=False)
    # Execute: the crash tore the sixth record
    os.truncate(_log_file(root), (sizes[4] + sizes[5]) // 2)
    reopened = _open(root, keks)
    # Assert: every anchored (acknowledged) document is there, nothing refused
    assert reopened.broken() == {}
    assert reopened.stats("docs").documents == 50
    reopened.close()


def test_deleting_the_log_is_refused(tmp_path: Path, keks: KeyFileKeks) -> None:
    root = tmp_path / "store"
    store = _open(root, keks)
    store.create_collection(CollectionSpec("docs", DIM))
    _batches(store, 0, 5)
    store.close(snapshot=False)
    shutil.rmtree(root / "collections" / "docs" / "wal")  # 6-delete-log
    reopened = _open(root, keks)
    _refused(reopened, "docs", "log records 1-5")
    reopened.close()


def test_a_collection_rolled_back_to_an_older_copy_is_refused(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare: a copy after three batches, then more batches and a snapshot
    root = tmp_path / "store"
    store = _open(root, keks)
    store.create_collection(CollectionSpec("docs", DIM))
    store.create_collection(CollectionSpec("other", DIM))
    _batches(store, 0, 3)
    store.close()
    shutil.copytree(root / "collections" / "docs", tmp_path / "backup")
    store = _open(root, keks)
    _batches(store, 3, 2)
    store.snapshot("docs")
    _batches(store, 5, 1)
    store.close(snapshot=False)
    # Execute: 7-roll-back-one-collection
    shutil.rmtree(root / "collections" / "docs")
    shutil.copytree(tmp_path / "backup", root / "collections" / "docs")
    reopened = _open(root, keks)
    # Assert: refused; the other collection is served
    _refused(reopened, "docs", "snapshot generation 3 and log records 4-6")
    assert reopened.names() == ["other"]
    reopened.close()


def _ckks(store: IndexStore, key: CkksSearchKey) -> tuple[CkksCollections, CkksDocumentEncryptor]:
    ckks = store.ckks_collections()
    return ckks, CkksDocumentEncryptor(key.public_context(), dimension=DIM)


def _put(ckks: CkksCollections, enc: CkksDocumentEncryptor, number: int, seed: int) -> None:
    ids = [f"c{number}-{i}" for i in range(4)]
    ckks.put_block("sealed", "node-a", number, ids, enc.encrypt_block(_unit(4, seed)))


def _ckks_store(root: Path, keks: KeyFileKeks, key: CkksSearchKey, blocks: int) -> None:
    store = _open(root, keks)
    ckks, enc = _ckks(store, key)
    ckks.create("sealed", dimension=DIM, evaluation_context=key.evaluation_context())
    for number in range(blocks):
        _put(ckks, enc, number, number)
    store.close()


def _blocks(root: Path) -> list[Path]:
    return sorted((root / "ckks" / "sealed" / "blocks").glob("*.sealed"))


def test_the_whole_store_folder_rolled_back_is_refused(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey
) -> None:
    # Prepare: a backup of the whole store folder, then writes to both kinds
    root = tmp_path / "store"
    _ckks_store(root, keks, key, blocks=1)
    store = _open(root, keks)
    store.create_collection(CollectionSpec("docs", DIM))
    _batches(store, 0, 2)
    store.close()
    shutil.copytree(root, tmp_path / "backup")
    store = _open(root, keks)
    ckks, enc = _ckks(store, key)
    _put(ckks, enc, 1, 1)
    _batches(store, 2, 2)
    store.close()
    # Execute: 8-roll-back-store-folder
    shutil.rmtree(root)
    shutil.copytree(tmp_path / "backup", root)
    reopened = _open(root, keks)
    # Assert: both collections refused, each naming what is missing
    _refused(reopened, "docs", "snapshot generation 3 and log records 3-4")
    ckks = reopened.ckks_collections()
    assert isinstance(ckks.broken()["sealed"], RollbackError)
    with pytest.raises(CollectionUnavailableError, match="manifest generation 3"):
        ckks.info("sealed")
    reopened.close()


@pytest.mark.parametrize("anchored", [False, True], ids=["no-anchor", "anchor"])
def test_a_deleted_ckks_block_is_refused(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey, anchored: bool
) -> None:
    root = tmp_path / "store"
    _ckks_store(root, keks, key, blocks=2)
    _blocks(root)[0].unlink()  # 9-delete-block
    reopened = _open(root, keks, anchored=anchored)
    ckks = reopened.ckks_collections()
    error = ckks.broken()["sealed"]
    assert isinstance(error, RollbackError)
    assert "of node 'node-a'" in error.problem
    reopened.close()


def test_a_rolled_back_ckks_block_is_refused(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey
) -> None:
    # Prepare: block 0 replaced by a newer version; keep the old file's bytes
    root = tmp_path / "store"
    _ckks_store(root, keks, key, blocks=1)
    old = _blocks(root)[0].read_bytes()
    store = _open(root, keks)
    ckks, enc = _ckks(store, key)
    _put(ckks, enc, 0, 7)
    store.close()
    # Execute: 10-roll-back-block (the old content under the current name)
    _blocks(root)[0].write_bytes(old)
    reopened = _open(root, keks)
    # Assert
    assert isinstance(reopened.ckks_collections().broken()["sealed"], IntegrityError)
    reopened.close()


def test_a_rolled_back_or_deleted_ckks_manifest_is_refused(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey
) -> None:
    # Prepare: a copy of the collection with one block, then a second block
    root = tmp_path / "store"
    _ckks_store(root, keks, key, blocks=1)
    folder = root / "ckks" / "sealed"
    shutil.copytree(folder, tmp_path / "backup")
    store = _open(root, keks)
    ckks, enc = _ckks(store, key)
    _put(ckks, enc, 1, 1)
    store.close()
    # Execute: 11-roll-back-manifest (with the blocks it named: consistent, but old)
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "backup", folder)
    reopened = _open(root, keks)
    # Assert
    error = reopened.ckks_collections().broken()["sealed"]
    assert isinstance(error, RollbackError)
    assert "manifest generation 3" in error.problem
    reopened.close()
    # Execute: 12-delete-manifest
    (folder / "manifest.sealed").unlink()
    reopened = _open(root, keks)
    # Assert
    assert "its manifest" in reopened.ckks_collections().broken()["sealed"].problem
    reopened.close()


def test_an_added_ckks_block_is_never_served(
    tmp_path: Path, keks: KeyFileKeks, key: CkksSearchKey
) -> None:
    # Prepare: a collection with one block; another collection's block file
    root = tmp_path / "store"
    _ckks_store(root, keks, key, blocks=1)
    intruder = _blocks(root)[0].with_name("0" * 32 + "-000000000009.sealed")
    shutil.copy(_blocks(root)[0], intruder)  # 13-add-block
    # Execute
    reopened = _open(root, keks)
    info = reopened.ckks_collections().info("sealed")
    # Assert: one block served, the added file removed
    assert (info.blocks, info.documents) == (1, 4)
    assert not intruder.exists()
    reopened.close()


def test_accept_rollback_reanchors_at_what_is_left(tmp_path: Path, keks: KeyFileKeks) -> None:
    # Prepare: a refused collection (its newest manifest deleted)
    data = tmp_path / "data"
    root = data / "store"
    store = _open(root, keks)
    store.create_collection(CollectionSpec("docs", DIM))
    _batches(store, 0, 3)
    store.snapshot("docs")
    _batches(store, 3, 1)
    store.snapshot("docs")
    store.close()
    (root / "collections" / "docs" / "manifest-000000000003.sealed").unlink()
    # Execute: the operator accepts the loss
    done = subprocess.run(
        [sys.executable, "-m", "fedembed", "index", "accept-rollback", "--collection", "docs",
         "--data-dir", str(data), "--key-file", str(keks.path), "--tenant", TENANT],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    # Assert: the collection opens with what was left, and keeps opening
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["open"] == ["docs"]
    for _ in range(2):
        reopened = _open(root, keks)
        assert reopened.broken() == {}
        assert reopened.stats("docs").documents == 30
        reopened.close()


def test_sigkill_under_load_with_the_anchor_loses_nothing_and_raises_no_false_alarm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a service whose anchor is outside its data dir; a fast node key
    kek = secrets.token_bytes(32)
    anchor = tmp_path / "keys" / "store.state-anchor"
    env = {"FEDEMBED_INDEX_STATE_ANCHOR": str(anchor)}
    data = tmp_path / "svc"
    service = start_index_service(data, kek=kek, extra_args=("--no-text-queries",), env=env)
    with service.admin() as admin:
        admin.post("/v1/admin/collections", json={"name": "docs", "dimension": DIM})
        token = admin.post(
            "/v1/admin/credentials",
            json={"role": "node", "name": "node-a", "scopes": ["docs"],
                  "rate_per_minute": 1_000_000, "burst": 100_000},
        ).json()["token"]  # fmt: skip
    acked: list[int] = []
    lock = threading.Lock()
    enough = threading.Event()

    def inserter(t: int) -> None:
        with httpx.Client(
            base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=600
        ) as client:
            for doc in range(t, 3000, 8):
                item = {"id": f"d{doc}", "vector": _unit(1, doc)[0].tolist()}
                try:
                    answer = client.put("/v1/collections/docs/documents", json={"items": [item]})
                except httpx.HTTPError:
                    return  # the service was killed
                if answer.status_code == 200:
                    with lock:
                        acked.append(doc)
                        if len(acked) >= 800:
                            enough.set()

    threads = [threading.Thread(target=inserter, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    # Execute: SIGKILL in the middle, then a restart with the same anchor
    try:
        assert enough.wait(timeout=600), f"only {len(acked)} inserts acknowledged"
    finally:
        service.kill()
        for thread in threads:
            thread.join()
    restarted = start_index_service(data, kek=kek, extra_args=("--no-text-queries",), env=env)
    try:
        with restarted.admin() as admin:
            listed = admin.get("/v1/admin/collections").json()
    finally:
        if restarted.stop(timeout_s=60) != 0:
            restarted.kill()
    # Assert: the anchor never claimed more than was durable, nothing acknowledged is lost
    monkeypatch.setenv("FEDEMBED_INDEX_KEK", base64.b64encode(kek).decode())
    store = IndexStore(
        data / "store", keks=EnvKeks.from_env(), tenant=TENANT, background=False,
        state_anchor=anchor,
    )  # fmt: skip
    try:
        assert store.broken() == {}
        rows = store.lookup("docs", [f"d{d}" for d in sorted(acked)])
    finally:
        store.close()
    assert [c["name"] for c in listed] == ["docs"]
    assert len(rows) == len(set(acked)) < 3000


def test_an_anchor_inside_the_data_folder_is_refused(tmp_path: Path, keks: KeyFileKeks) -> None:
    root = tmp_path / "store"
    with pytest.raises(StateAnchorError, match="inside the index folder"):
        IndexStore(root, keks=keks, tenant=TENANT, background=False, state_anchor=root / "x.anchor")
