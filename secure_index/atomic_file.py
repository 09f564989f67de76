"""Crash-safe whole-file writes: temp file in the same directory, fsync, rename, fsync dir.

A reader sees either the previous file or the new one, never a mix: the bytes go to a
temporary file beside the target, which is fsync'ed, renamed over the target with
``os.replace`` (atomic on POSIX file systems) and made durable by fsync'ing the
directory. On any failure the temporary file is removed and the previous file is left
as it was. OS errors become a :class:`~secure_index.errors.StorageError` that names the
file, what happened (disk full, read-only file system, permission denied, file too
large) and how to fix it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from secure_index.errors import StorageError

__all__ = ["FILE_MODE", "atomic_write", "fsync_directory", "storage_error", "write_all"]

logger = logging.getLogger(__name__)

FILE_MODE = 0o600
TEMP_SUFFIX = ".tmp"
_TEMP_TOKEN_BYTES = 6
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

_DISK_FULL = (
    "disk full (no space left on the device or quota exceeded)",
    "free space on the file system that holds {dir} (or raise the quota) and retry",
)
_READ_ONLY = (
    "read-only file system",
    "remount {dir} read-write, or point the index at a writable directory",
)
_PERMISSION = (
    "permission denied",
    "give the user running fedembed write access to {dir} (chown/chmod) and retry",
)
_TOO_LARGE = (
    "file too large for the file system or the process's file size limit",
    "raise the file size limit (ulimit -f) or move the index to a file system that "
    "allows larger files",
)
_EXPLANATIONS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: _DISK_FULL,
    errno.EDQUOT: _DISK_FULL,
    errno.EROFS: _READ_ONLY,
    errno.EACCES: _PERMISSION,
    errno.EPERM: _PERMISSION,
    errno.EFBIG: _TOO_LARGE,
}


def storage_error(exc: OSError, *, path: Path, operation: str) -> StorageError:
    """The user-facing error for an OS error while writing ``path``.

    Args:
        exc: The error the operating system raised.
        path: The file or directory that was being written.
        operation: What was being done, as a verb phrase ("write", "append to the log").

    Returns:
        A :class:`StorageError` naming the path, what happened and the fix (not raised).
    """
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    code = exc.errno if exc.errno is not None else 0
    name = errno.errorcode.get(code, "unknown error")
    what, fix = _EXPLANATIONS.get(
        code,
        (
            exc.strerror or str(exc),
            "check the disk and the file system that holds {dir} (dmesg), then retry",
        ),
    )
    return StorageError(
        f"could not {operation} {path}: {what} ({name})",
        expected=f"a writable directory {directory} with free space",
        fix=fix.format(dir=directory),
    )


def write_all(fd: int, data: bytes | bytearray | memoryview) -> int:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less); returns the count.

    Raises:
        OSError: As ``os.write`` raises it.
    """
    view = memoryview(data).cast("B")
    total = view.nbytes
    done = 0
    while done < total:
        done += os.write(fd, view[done:])
    return total


def fsync_directory(path: Path) -> None:
    """Make a rename or unlink inside directory ``path`` durable.

    Raises:
        StorageError: When the directory cannot be opened or synced.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError as exc:
        raise storage_error(exc, path=Path(path), operation="sync the directory") from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise storage_error(exc, path=Path(path), operation="sync the directory") from exc
    finally:
        os.close(fd)


def atomic_write(
    path: Path, chunks: Iterable[bytes | bytearray | memoryview], *, mode: int = FILE_MODE
) -> int:
    """Replace ``path`` with the concatenation of ``chunks``, atomically and durably.

    Each chunk is written before the next one is requested, so a generator may reuse
    its buffer. Exceptions raised by the iterable propagate unchanged (after cleanup).

    Args:
        path: The file to create or replace.
        chunks: The new content, in order.
        mode: Permission bits of the new file (default owner read/write only).

    Returns:
        The number of bytes written.

    Raises:
        StorageError: When the temporary file cannot be created, written, synced or
            renamed; the previous file at ``path`` is then unchanged.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(_TEMP_TOKEN_BYTES)}{TEMP_SUFFIX}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, mode)
    except OSError as exc:
        raise storage_error(exc, path=path, operation="create a temporary file for") from exc
    size = 0
    renamed = False
    try:
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
            for chunk in chunks:
                size += write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        renamed = True
    except OSError as exc:
        raise storage_error(exc, path=path, operation="write") from exc
    finally:
        if not renamed:
            with contextlib.suppress(OSError):
                temp.unlink()
    fsync_directory(path.parent)
    logger.debug("atomic write: %s (%d bytes)", path.name, size)
    return size
