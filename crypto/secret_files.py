"""The one rule for secret files: owner-only and owned by the user who reads them.

Every file that holds a key (the index's KEK file, the gateway's CKKS search key, a DCPE
keyring, a node's auth key, a node's CKKS secret context, the coordinator's TLS key) is
read through :func:`read_secret_file`, or checked with :func:`require_secret_file` where
another program reads it. A file that group or others may access, that another user
owns, or that is not a regular file is refused before a byte of it is used, with the
path, its mode and the ``chmod 600 PATH`` that fixes it. The check runs on the opened
descriptor (``fstat``), so the file that is checked is the file that is read. Writers
use :func:`write_secret_file`: a temporary file created 0600, fsync'ed and renamed over
the target, so a secret never exists with wider permissions, even for a moment.

The rule is the one OpenSSH applies to private keys ("UNPROTECTED PRIVATE KEY FILE":
any group or other permission bit refuses the key), plus ownership. It is enforced on
POSIX systems only (elsewhere the mode bits do not mean this).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from crypto.errors import KeyManagementError
from embedding_core.atomic_file import atomic_write_bytes

__all__ = [
    "SECRET_FILE_MODE",
    "SecretFileError",
    "read_secret_file",
    "require_secret_file",
    "write_secret_file",
]

SECRET_FILE_MODE = 0o600
_FORBIDDEN_BITS = stat.S_IRWXG | stat.S_IRWXO
# O_NONBLOCK: opening a FIFO planted at the path must not hang; fstat then refuses it
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_EXPECTED = "mode 0600 or stricter (no access for group or others), owned by the user running "


class SecretFileError(KeyManagementError):
    """A secret file may be read by others, is owned by another user or is not a file."""


def _enforced() -> bool:
    return os.name == "posix"


def _check(status: os.stat_result, path: Path, what: str) -> None:
    uid = os.geteuid()
    expected = f"{_EXPECTED}fedembed (uid {uid})"
    if not stat.S_ISREG(status.st_mode):
        raise SecretFileError(
            f"the {what} {path} is not a regular file",
            expected=f"a regular file with {expected}",
            fix=f"point fedembed at the {what} itself",
        )
    mode = stat.S_IMODE(status.st_mode)
    if mode & _FORBIDDEN_BITS:
        raise SecretFileError(
            f"the {what} {path} is accessible by group or others (mode {mode:04o})",
            expected=expected,
            fix=f"chmod 600 {path}",
        )
    if status.st_uid != uid:
        raise SecretFileError(
            f"the {what} {path} is owned by uid {status.st_uid}, not by the user running "
            f"fedembed (uid {uid})",
            expected=expected,
            fix=f"chown {uid} {path} && chmod 600 {path} (or run fedembed as its owner)",
        )


def require_secret_file(path: Path | str, *, what: str) -> None:
    """Refuse ``path`` unless it is an owner-only regular file of the current user.

    For secret files another program opens (e.g. a TLS key handed to a server);
    readers in fedembed use :func:`read_secret_file`.

    Args:
        path: The secret file.
        what: What the file is, for the message ("KEK file", "DCPE keyring").

    Raises:
        SecretFileError: When the file breaks the rule.
        OSError: When the file cannot be examined (missing, permission denied).
    """
    if _enforced():
        _check(os.stat(path), Path(path), what)


def read_secret_file(path: Path | str, *, what: str) -> bytes:
    """Read a secret file after checking the rule on the opened descriptor.

    Args:
        path: The secret file.
        what: What the file is, for the message ("KEK file", "DCPE keyring").

    Returns:
        The file's bytes.

    Raises:
        SecretFileError: When the file breaks the rule (nothing of it is returned).
        OSError: When the file cannot be opened or read (the caller names the fix).
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if _enforced():
            _check(os.fstat(fd), Path(path), what)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def write_secret_file(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, mode 0600 from the first byte.

    Raises:
        OSError: When the temporary file cannot be written, synced or renamed (the
            previous file, if any, is left as it was).
    """
    atomic_write_bytes(Path(path), data, mode=SECRET_FILE_MODE)
