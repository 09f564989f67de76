"""IndexStore: durable upserts, recovery from snapshot + log, refusal of damaged files
(one broken collection never takes the others down), no plaintext on disk, concurrency
with snapshots, key rotation, creates that fail leave nothing, private folders."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from crypto.errors import KeyManagementError
from secure_index.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    CollectionUnavailableError,
    IntegrityError,
    OwnershipError,
)
from secure_index.index.hnsw_collection import CollectionSpec, Metric
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks, sealed_kek_id
from tests.secure_index.kms_outage import KmsOutage

TENANT = "acme-consortium"


def _unit(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


@pytest.fixture
def keks(tmp_path: Path) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path / "kek.json")


def _store(root: Path, keks: KeyFileKeks, **kw: object) -> IndexStore:
    return IndexStore(root, keks=keks, tenant=TENANT, background=False, **kw)  # type: ignore[arg-type]


def test_upserts_survive_a_restart_from_the_log_alone(tmp_path: Path, keks: KeyFileKeks) -> None:
    # Prepare
    x = _unit(300)
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", 32))
    for start in range(0, 300, 50):
        ids = [f"d{i}" for i in range(start, start + 50)]
        store.upsert("docs", ids, x[start : start + 50], owner="node-0", tags=[["t"]] * 50)
    store.delete("docs", ["d0", "d1"], owner="node-0")
    # Execute: close WITHOUT a snapshot, as a crash would (only the log has the data)
    store.close(snapshot=False)
    reopened = _store(tmp_path / "idx", keks)
    # Assert
    assert reopened.stats("docs").documents == 298
    hits = reopened.knn_query("docs", x[2:10], k=1)
    assert [h[0].doc_id for h in hits] == [f"d{i}" for i in range(2, 10)]
    assert reopened.lookup("docs", ["d0", "d5"])[0].doc_id == "d5"
    assert reopened.lookup("docs", ["d5"])[0].tags == ("t",)
    reopened.close()


def test_snapshot_then_more_log_records_recover_exactly(tmp_path: Path, keks: KeyFileKeks) -> None:
    x = _unit(200, seed=2)
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", 32, metric=Metric.L2))
    store.upsert("docs", [f"a{i}" for i in range(100)], x[:100], owner="n")
    generation = store.snapshot("docs")
    store.upsert("docs", [f"b{i}" for i in range(100)], x[100:], owner="n")
    store.upsert("docs", ["a0"], x[150:151], owner="n")  # replaced after the snapshot
    store.close(snapshot=False)

    reopened = _store(tmp_path / "idx", keks)
    stats = reopened.stats("docs")
    assert stats.generation == generation
    assert stats.documents == 200
    assert reopened.knn_query("docs", x[150], k=2)[0][0].doc_id in {"a0", "b50"}
    assert {h.doc_id for h in reopened.knn_query("docs", x[150], k=2)[0]} == {"a0", "b50"}
    reopened.close()


def test_previous_generation_is_kept_and_older_ones_pruned(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", 32))
    for g in range(4):
        store.upsert("docs", [f"g{g}"], _unit(1, seed=g), owner="n")
        store.snapshot("docs")
    store.close()
    names = sorted(p.name for p in (tmp_path / "idx" / "collections" / "docs").glob("manifest-*"))
    assert len(names) == 2  # current and previous generation


def test_errors_for_unknown_existing_and_foreign(tmp_path: Path, keks: KeyFileKeks) -> None:
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", 32))
    store.upsert("docs", ["x"], _unit(1), owner="node-a")
    with pytest.raises(CollectionNotFoundError, match="does not exist"):
        store.upsert("nope", ["x"], _unit(1), owner="node-a")
    with pytest.raises(CollectionExistsError):
        store.create_collection(CollectionSpec("docs", 32))
    with pytest.raises(OwnershipError, match="another node"):
        store.upsert("docs", ["x"], _unit(1), owner="node-b")
    with pytest.raises(OwnershipError):
        store.delete("docs", ["x"], owner="node-b")
    assert store.lookup("docs", ["x"])[0].owner == "node-a"
    store.close()


def test_a_second_process_on_the_same_directory_is_refused(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    from secure_index.errors import StorageError

    store = _store(tmp_path / "idx", keks)
    with pytest.raises(StorageError, match="in use"):
        _store(tmp_path / "idx", keks)
    store.close()


def test_no_plaintext_vector_id_or_tag_reaches_the_disk(tmp_path: Path, keks: KeyFileKeks) -> None:
    # Prepare: recognisable vectors, ids and tags
    x = _unit(64, seed=7)
    ids = [f"secret-document-{i:04d}" for i in range(64)]
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", 32))
    # Execute: log records, a snapshot, more log records
    store.upsert("docs", ids[:32], x[:32], owner="hospital-a", tags=[["oncology-ward"]] * 32)
    store.snapshot("docs")
    store.upsert("docs", ids[32:], x[32:], owner="hospital-a", tags=[["oncology-ward"]] * 32)
    store.close(snapshot=False)
    # Assert
    blobs = [p.read_bytes() for p in (tmp_path / "idx").rglob("*") if p.is_file()]
    assert blobs
    needles = [b"secret-document", b"oncology-ward", b"hospital-a"]
    needles += [x[i].tobytes()[:16] for i in range(64)] + [x[i].tobytes()[-16:] for i in range(64)]
    for blob in blobs:
        for needle in needles:
            assert needle not in blob


@pytest.mark.parametrize("kind", ["graph", "table", "manifest"])
def test_tampered_or_swapped_snapshot_files_are_refused(
    tmp_path: Path, keks: KeyFileKeks, kind: str
) -> None:
    # Prepare: two collections with one snapshot each
    store = _store(tmp_path / "idx", keks)
    for name in ("a", "b"):
        store.create_collection(CollectionSpec(name, 32))
        store.upsert(name, ["x", "y"], _unit(2), owner="n")
        store.snapshot(name)
    store.close(snapshot=False)
    folder = tmp_path / "idx" / "collections"
    target = sorted((folder / "a").glob(f"{kind}-*.sealed"))[-1]
    original = target.read_bytes()
    # Execute: swap in b's file of the same kind and generation
    target.write_bytes((folder / "b" / target.name).read_bytes())
    reopened = _store(tmp_path / "idx", keks)
    # Assert: a is refused with one clear error, b is still served
    assert isinstance(reopened.broken()["a"], IntegrityError)
    with pytest.raises(CollectionUnavailableError, match="could not be decrypted and authent"):
        reopened.knn_query("a", _unit(1), k=1)
    assert reopened.names() == ["b"]
    assert reopened.knn_query("b", _unit(1), k=1)[0]
    reopened.close()
    # Execute: a's own file with one flipped byte
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 1
    target.write_bytes(bytes(flipped))
    reopened = _store(tmp_path / "idx", keks)
    # Assert
    with pytest.raises(CollectionUnavailableError, match=target.name):
        reopened.stats("a")
    reopened.close()


def test_wrong_kek_is_refused_with_one_clear_error(tmp_path: Path, keks: KeyFileKeks) -> None:
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", 32))
    store.close()
    other = KeyFileKeks.create(tmp_path / "other.json")
    reopened = _store(tmp_path / "idx", other)
    with pytest.raises(CollectionUnavailableError, match="key-encryption key"):
        reopened.stats("docs")
    assert isinstance(reopened.broken()["docs"], IntegrityError)
    reopened.close()


def test_kek_rotation_rewraps_every_file(tmp_path: Path, keks: KeyFileKeks) -> None:
    # Prepare
    x = _unit(50)
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", 32))
    store.upsert("docs", [f"d{i}" for i in range(50)], x, owner="n")
    store.snapshot("docs")
    old = keks.primary_id
    # Execute
    new = keks.rotate()
    changed = store.rewrap()
    store.close()
    keks.retire(old)
    # Assert
    assert changed >= 3
    sealed = list((tmp_path / "idx").rglob("*.sealed"))
    assert sealed
    assert all(sealed_kek_id(p) == new for p in sealed)
    reopened = _store(tmp_path / "idx", keks)
    assert reopened.knn_query("docs", x[:5], k=1)[4][0].doc_id == "d4"
    reopened.close()


def test_queries_stay_correct_during_inserts_and_snapshots(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare: stable documents that every query must find
    stable = _unit(500, seed=11)
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", 32))
    store.upsert("docs", [f"s{i}" for i in range(500)], stable, owner="n")
    errors: list[BaseException] = []
    wrong: list[tuple[int, str]] = []
    stop = threading.Event()

    def writer(w: int) -> None:
        try:
            for b in range(30):
                store.upsert(
                    "docs",
                    [f"w{w}-{b}-{i}" for i in range(20)],
                    _unit(20, seed=1000 + 50 * w + b),
                    owner="n",
                )
        except BaseException as exc:
            errors.append(exc)

    def snapshotter() -> None:
        try:
            while not stop.is_set():
                store.snapshot("docs")
        except BaseException as exc:
            errors.append(exc)

    def reader(r: int) -> None:
        rng = np.random.default_rng(r)
        try:
            while not stop.is_set():
                i = int(rng.integers(500))
                top = store.knn_query("docs", stable[i], k=3)[0]
                if top[0].doc_id != f"s{i}":
                    wrong.append((i, top[0].doc_id))
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    others = [threading.Thread(target=snapshotter)] + [
        threading.Thread(target=reader, args=(r,)) for r in range(3)
    ]
    # Execute
    for t in others + writers:
        t.start()
    for t in writers:
        t.join()  # a deadlock is caught by pytest-timeout; a loaded machine only slows it
    stop.set()
    for t in others:
        t.join()
    # Assert
    assert not errors
    assert not wrong
    assert store.stats("docs").documents == 500 + 3 * 30 * 20
    store.close(snapshot=False)
    reopened = _store(tmp_path / "idx", keks)
    assert reopened.stats("docs").documents == 500 + 3 * 30 * 20
    reopened.close()


def test_a_lost_log_folder_never_hides_new_inserts(tmp_path: Path, keks: KeyFileKeks) -> None:
    # Prepare: everything folded into a snapshot, then the log folder disappears
    import shutil

    x = _unit(20, seed=4)
    store = _store(tmp_path / "idx", keks)
    store.create_collection(CollectionSpec("docs", 32))
    store.upsert("docs", [f"a{i}" for i in range(10)], x[:10], owner="n")
    store.close()  # folds the log
    shutil.rmtree(tmp_path / "idx" / "collections" / "docs" / "wal")
    # Execute: new inserts after the loss, then a crash (no snapshot)
    store = _store(tmp_path / "idx", keks)
    result = store.upsert("docs", [f"b{i}" for i in range(10)], x[10:], owner="n")
    store.close(snapshot=False)
    reopened = _store(tmp_path / "idx", keks)
    # Assert: new sequence numbers continue after the folded ones and replay
    assert result.seq > 1
    assert reopened.stats("docs").documents == 20
    reopened.close()


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_a_failed_create_leaves_nothing_and_the_store_still_opens(
    tmp_path: Path, keks: KeyFileKeks, fail_at: int
) -> None:
    # Prepare: a store with one collection; the KMS fails during the next create
    root = tmp_path / "idx"
    store = _store(root, keks)
    store.create_collection(CollectionSpec("kept", 32))
    store.close()
    kms = KmsOutage(keks, fail_at)
    store = IndexStore(root, keks=kms, tenant=TENANT, background=False)
    # Execute
    with pytest.raises(KeyManagementError):
        store.create_collection(CollectionSpec("docs", 32))
    # Assert: no folder, no name taken; the create works once the KMS is back
    assert sorted(p.name for p in (root / "collections").iterdir()) == ["kept"]
    kms.fail_at = 0
    store.create_collection(CollectionSpec("docs", 32))
    store.upsert("docs", ["x"], _unit(1), owner="n")
    store.close()
    reopened = _store(root, keks)
    assert reopened.names() == ["docs", "kept"]
    assert reopened.broken() == {}
    reopened.close()


def test_a_half_made_collection_is_reported_and_the_others_are_served(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare: what an older version's failed create left: a folder without a manifest
    root = tmp_path / "idx"
    store = _store(root, keks)
    store.create_collection(CollectionSpec("good", 32))
    store.upsert("good", ["x"], _unit(1), owner="n")
    store.close()
    (root / "collections" / "half").mkdir()
    (root / "collections" / ".new-docs.0a1b2c3d").mkdir()  # an interrupted create
    # Execute
    reopened = _store(root, keks)
    # Assert
    assert reopened.names() == ["good"]
    assert reopened.knn_query("good", _unit(1), k=1)[0][0].doc_id == "x"
    with pytest.raises(CollectionUnavailableError, match=r"'half' is unavailable.*no manifest"):
        reopened.upsert("half", ["y"], _unit(1), owner="n")
    with pytest.raises(CollectionExistsError):
        reopened.create_collection(CollectionSpec("half", 32))
    assert not (root / "collections" / ".new-docs.0a1b2c3d").exists()
    reopened.close()


def test_folders_are_private(tmp_path: Path, keks: KeyFileKeks) -> None:
    root = tmp_path / "a" / "idx"
    store = _store(root, keks)
    store.create_collection(CollectionSpec("docs", 32))
    store.ckks_collections()
    store.close()
    for folder in (root, root / "collections", root / "collections" / "docs", root / "ckks"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert (root / "collections" / "docs" / "wal").stat().st_mode & 0o077 == 0


def test_an_anchored_store_reopens_after_snapshots_crashes_and_kek_rotation(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare
    root, anchor = tmp_path / "idx", tmp_path / "keys" / "idx.state-anchor"
    store = _store(root, keks, state_anchor=anchor)
    store.create_collection(CollectionSpec("docs", 32))
    store.upsert("docs", ["a"], _unit(1), owner="n")
    store.snapshot("docs")
    store.upsert("docs", ["b"], _unit(1, seed=1), owner="n")
    store.close(snapshot=False)  # a crash: the log holds "b"
    # Execute: reopen, rotate the KEK, write, close cleanly, retire the old KEK
    store = _store(root, keks, state_anchor=anchor)
    old = keks.primary_id
    keks.rotate()
    store.rewrap()
    store.upsert("docs", ["c"], _unit(1, seed=2), owner="n")
    store.close()
    store = _store(root, keks, state_anchor=anchor)  # re-wraps the anchor's key
    store.close()
    keks.retire(old)
    reopened = _store(root, keks, state_anchor=anchor)
    # Assert: no false alarm, nothing lost
    assert reopened.broken() == {}
    assert reopened.stats("docs").documents == 3
    reopened.close()
