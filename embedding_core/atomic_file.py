"""Crash-safe whole-file replacement for the kernel's small files (adapters, ledgers).

The bytes go to a temporary file beside the target, which is fsync'ed and renamed over
the target with ``os.replace`` (atomic on POSIX file systems); the directory is then
fsync'ed so the rename survives a power cut. A reader sees either the previous file or
the new one. On failure the temporary file is removed, the previous file is left as it
was and the ``OSError`` propagates. (The secure index has its own variant,
:mod:`secure_index.atomic_file`, that writes in segments and turns OS errors
into operator advice.)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json"]

TEMP_SUFFIX = ".tmp"


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where unsupported."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that it is always either the old or the new file.

    The new file gets permission bits ``mode`` (owner-only by default) before it
    replaces the old one, so no reader ever sees it with other permissions.

    Raises:
        OSError: The temporary file could not be written, synced or renamed.
    """
    path = Path(path)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    temp = Path(temp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_directory(path.parent)


def atomic_write_json(path: Path, document: dict[str, Any]) -> None:
    """:func:`atomic_write_bytes` of ``document`` as indented JSON (no NaN or infinity)."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
