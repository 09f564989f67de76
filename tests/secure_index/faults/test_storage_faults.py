"""Disk full and read-only directory during a snapshot: the previous generation stays
usable, the error is clear, nothing acknowledged is lost."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from secure_index.errors import StorageError
from secure_index.index.hnsw_collection import CollectionSpec
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks

DIM = 64


def _unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (needs root, as in CI); skipped where mounting is not allowed."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path: Path) -> None:
    with path.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_disk_full_during_snapshot_keeps_the_previous_generation(
    small_fs: Path, tmp_path: Path
) -> None:
    # Prepare: generation 1 on disk, more records in the log
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    store = IndexStore(small_fs / "idx", keks=keks, tenant="t", background=False)
    store.create_collection(CollectionSpec("docs", DIM))
    x = _unit(600, seed=1)
    store.upsert("docs", [f"a{i}" for i in range(300)], x[:300], owner="n")
    store.snapshot("docs")
    store.upsert("docs", [f"b{i}" for i in range(300)], x[300:], owner="n")
    generation = store.stats("docs").generation
    _fill(small_fs / "filler")
    # Execute
    with pytest.raises(StorageError) as info:
        store.snapshot("docs")
    # Assert: clear error, queries still served, nothing lost after freeing space
    assert "disk full" in str(info.value).lower() or "no space" in str(info.value).lower()
    assert info.value.fix
    assert store.knn_query("docs", x[450], k=1)[0][0].doc_id == "b150"
    assert store.stats("docs").generation == generation
    assert not [p for p in (small_fs / "idx").rglob("*.tmp*")]
    with pytest.raises(StorageError):  # a batch that needs new pages: not acknowledged
        store.upsert("docs", [f"c{i}" for i in range(300)], _unit(300, seed=9), owner="n")
    (small_fs / "filler").unlink()
    store.close(snapshot=False)
    reopened = IndexStore(small_fs / "idx", keks=keks, tenant="t", background=False)
    assert reopened.stats("docs").documents == 600
    assert reopened.lookup("docs", ["c0"]) == []  # the refused batch left no trace
    assert reopened.snapshot("docs") == generation + 1
    reopened.close()


def test_read_only_directory_during_snapshot(small_fs: Path, tmp_path: Path) -> None:
    # Prepare: the collection directory becomes a read-only bind mount of itself
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    store = IndexStore(small_fs / "idx", keks=keks, tenant="t", background=False)
    store.create_collection(CollectionSpec("docs", DIM))
    x = _unit(100, seed=2)
    store.upsert("docs", [f"a{i}" for i in range(100)], x, owner="n")
    folder = small_fs / "idx" / "collections" / "docs"
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        # Execute
        with pytest.raises(StorageError) as info:
            store.snapshot("docs")
        # Assert
        assert "read-only" in str(info.value).lower()
        assert info.value.fix
        assert store.knn_query("docs", x[3], k=1)[0][0].doc_id == "a3"
    finally:
        subprocess.run(["umount", str(folder)], check=False)
    store.close(snapshot=False)
    reopened = IndexStore(small_fs / "idx", keks=keks, tenant="t", background=False)
    assert reopened.stats("docs").documents == 100
    assert reopened.lookup("docs", ["a99"])[0].doc_id == "a99"
    reopened.close()
