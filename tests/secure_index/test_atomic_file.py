"""Atomic file writes and the mapping of OS errors to clear StorageErrors."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from secure_index.atomic_file import atomic_write, fsync_directory, storage_error
from secure_index.errors import StorageError


def test_atomic_write_creates_a_private_file_from_chunks(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    size = atomic_write(path, [b"abc", memoryview(b"defg"), bytearray(b"h")])
    assert size == 8
    assert path.read_bytes() == b"abcdefgh"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old content")
    atomic_write(path, [b"new"])
    assert path.read_bytes() == b"new"


def test_a_failing_source_leaves_the_previous_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write(path, [b"previous"])

    def chunks() -> Iterator[bytes]:
        yield b"partial new content"
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        atomic_write(path, chunks())
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_missing_directory_is_a_storage_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "f.bin"
    with pytest.raises(StorageError, match="ENOENT") as excinfo:
        atomic_write(path, [b"x"])
    assert str(path) in str(excinfo.value)
    with pytest.raises(StorageError):
        fsync_directory(tmp_path / "absent")


@pytest.mark.parametrize(
    ("code", "phrase", "fix"),
    [
        (errno.ENOSPC, "disk full", "free space"),
        (errno.EDQUOT, "disk full", "quota"),
        (errno.EROFS, "read-only file system", "remount"),
        (errno.EACCES, "permission denied", "write access"),
        (errno.EPERM, "permission denied", "write access"),
        (errno.EFBIG, "file too large", "ulimit"),
        (errno.EIO, "Input/output error", "dmesg"),
    ],
)
def test_storage_error_says_what_happened_and_how_to_fix_it(
    tmp_path: Path, code: int, phrase: str, fix: str
) -> None:
    path = tmp_path / "graph.sealed"
    error = storage_error(OSError(code, os.strerror(code)), path=path, operation="write")
    assert isinstance(error, StorageError)
    assert error.problem.startswith(f"could not write {path}: {phrase}")
    assert errno.errorcode[code] in error.problem
    assert fix in error.fix
    assert str(tmp_path) in error.fix or code == errno.EFBIG
