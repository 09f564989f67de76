"""A full or read-only file system: clear StorageErrors, previous files intact, a log that
stays consistent. Uses a real 256 KiB tmpfs (needs root; skipped with the reason otherwise)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from secure_index.errors import StorageError
from secure_index.sealing.key_encryption_keys import KeyFileKeks
from secure_index.sealing.sealed_file import SealedContext, open_sealed, write_sealed
from secure_index.storage.wal import WriteAheadLog

CTX = SealedContext(tenant="acme", collection="papers", kind="index", dimension=8, metric="l2")
WAL_CTX = SealedContext(tenant="acme", collection="papers", kind="wal", dimension=8, metric="l2")
TMPFS_SIZE = "256k"


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (os.geteuid() != 0)")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = _mount("-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


@pytest.fixture
def keks(tmp_path: Path) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path / "kek.json")


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\xaa" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_write_sealed_into_a_full_disk_keeps_the_previous_file(
    tiny_fs: Path, keks: KeyFileKeks
) -> None:
    # Prepare
    path = tiny_fs / "graph-1.sealed"
    previous = os.urandom(4096)
    write_sealed(path, previous, context=CTX, keks=keks, segment_size=1024)
    # Execute
    with pytest.raises(StorageError) as excinfo:
        write_sealed(path, os.urandom(1 << 20), context=CTX, keks=keks)
    # Assert
    assert "disk full" in str(excinfo.value)
    assert str(path) in str(excinfo.value)
    assert "free space" in excinfo.value.fix
    assert bytes(open_sealed(path, expected=CTX, keks=keks).read()) == previous
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["graph-1.sealed"]  # temp removed


def test_write_sealed_on_a_read_only_file_system(tiny_fs: Path, keks: KeyFileKeks) -> None:
    path = tiny_fs / "graph-1.sealed"
    previous = os.urandom(2048)
    write_sealed(path, previous, context=CTX, keks=keks)
    result = _mount("-o", "remount,ro", str(tiny_fs))
    if result.returncode != 0:
        pytest.skip(f"cannot remount read-only: {result.stderr.strip()}")
    with pytest.raises(StorageError) as excinfo:
        write_sealed(path, b"new", context=CTX, keks=keks)
    assert "read-only file system" in str(excinfo.value)
    assert "remount" in excinfo.value.fix
    assert bytes(open_sealed(path, expected=CTX, keks=keks).read()) == previous


def test_a_failed_append_is_not_acknowledged_nor_replayed(tiny_fs: Path, keks: KeyFileKeks) -> None:
    # Prepare: a log with two records, then a full disk.
    directory = tiny_fs / "wal"
    log = WriteAheadLog.open(directory, context=WAL_CTX, keks=keks)
    log.append([b"one", b"two"])
    filler = _fill(tiny_fs)
    # Execute
    with pytest.raises(StorageError, match="disk full"):
        log.append([os.urandom(64 * 1024)])
    after_failure = list(log.replay())
    filler.unlink()
    next_seq = log.append([b"three"])
    log.close()
    reopened = WriteAheadLog.open(directory, context=WAL_CTX, keks=keks)
    # Assert
    assert after_failure == [(1, b"one"), (2, b"two")]
    assert next_seq == 3
    assert list(reopened.replay()) == [(1, b"one"), (2, b"two"), (3, b"three")]
    reopened.close()


def test_rotating_keys_on_a_full_disk_changes_nothing(tiny_fs: Path) -> None:
    path = tiny_fs / "kek.json"
    keks = KeyFileKeks.create(path)
    before = path.read_bytes()
    _fill(tiny_fs)
    with pytest.raises(StorageError, match="disk full"):
        keks.rotate()
    assert keks.primary_id == "kek-1"
    assert path.read_bytes() == before
    assert [v.id for v in KeyFileKeks.load(path).versions()] == ["kek-1"]
