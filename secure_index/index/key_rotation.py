"""Rotating the store's key-encryption key (KEK): every sealed file re-wrapped, crash-safe.

Envelope encryption (NIST SP 800-57 Part 1 Rev. 5, section 6.1.1; every cloud KMS) makes
rotation cheap: each file's body stays as it is, only its short data key is wrapped anew
under the new KEK version (:func:`~secure_index.sealing.rewrap_sealed`). Rotation runs in
an order where a refusal changes nothing and a crash loses nothing:

1. take the store folder (the :class:`IndexStore` flock on ``<store>/.lock``): a running
   service refuses here, before the key file is touched;
2. add a KEK version to the key file and make it primary (an atomic rewrite; the older
   versions stay in the file until ``keys retire``);
3. re-wrap: the at-rest and DCPE collections and the state anchor
   (:meth:`IndexStore.rewrap`: a snapshot rolls the write-ahead log onto the new KEK and
   the kept generations are re-wrapped), the CKKS collections
   (:meth:`~secure_index.index.ckks_collections.CkksCollections.rewrap`), then any other
   sealed file under the store folder whose header still names an older KEK;
4. count the envelope files (sealed files and log files) that still name an older KEK.

A crash after step 2 leaves some files under an older version, which the key file still
holds, so the store opens and serves; ``fedembed index keys rewrap`` (or another
``rotate``) finishes the job. ``keys retire`` refuses while :func:`kek_usage` finds a file
that names the version.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from crypto.errors import KeyManagementError
from embedding_core.errors import FedembedError
from secure_index.atomic_file import TEMP_SUFFIX, storage_error
from secure_index.errors import IntegrityError, StorageError
from secure_index.index.index_store import IndexStore
from secure_index.index.store_layout import COLLECTIONS_DIR, LOCK_FILE
from secure_index.sealing import KekProvider, KeyFileKeks, rewrap_sealed
from secure_index.sealing.envelope_header import (
    MAX_HEADER_SIZE,
    HeaderFormatError,
    unpack_envelope,
)
from secure_index.sealing.sealed_file import SEAL_MAGIC
from secure_index.storage.wal_file import WAL_MAGIC

__all__ = [
    "ENVELOPE_MAGICS",
    "REWRAP_COMMAND",
    "RewrapResult",
    "kek_usage",
    "rewrap_store",
    "rotate_store",
]

logger = logging.getLogger(__name__)

ENVELOPE_MAGICS = (SEAL_MAGIC, WAL_MAGIC)
REWRAP_COMMAND = "fedembed index keys rewrap"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class RewrapResult:
    """What a rotation or re-wrap did.

    Attributes:
        primary: The KEK version every file is now wrapped under.
        rewrapped_files: Files whose data key was re-wrapped (the snapshot that rolls the
            write-ahead log writes new files under the primary and is not counted).
        older_files: Envelope files that still name another version, by version (empty
            after a complete run).
    """

    primary: str
    rewrapped_files: int
    older_files: dict[str, int]


def _envelope_kek_id(path: Path) -> tuple[bytes, str] | None:
    """The magic and KEK id of an envelope file's header; ``None`` for other files."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(MAX_HEADER_SIZE)
    except OSError as exc:
        raise storage_error(exc, path=path, operation="read") from exc
    for magic in ENVELOPE_MAGICS:
        if head.startswith(magic):
            try:
                return magic, unpack_envelope(head, magic).wrapped.kek_id
            except HeaderFormatError:
                raise IntegrityError(path) from None
    return None


def _envelope_files(store_root: Path) -> list[tuple[Path, bytes, str]]:
    found: list[tuple[Path, bytes, str]] = []
    for folder, _dirs, names in os.walk(store_root):
        for name in sorted(names):
            path = Path(folder) / name
            if name.endswith(TEMP_SUFFIX) or path.is_symlink() or not path.is_file():
                continue  # leftovers of interrupted writes are never read
            header = _envelope_kek_id(path)
            if header is not None:
                found.append((path, *header))
    return found


def kek_usage(store_root: Path) -> dict[str, list[Path]]:
    """Every envelope file (sealed or log file) under ``store_root`` by the KEK it names.

    Reads only the public headers (no key needed, nothing authenticated), so it counts;
    it does not prove that a file opens.

    Raises:
        KeyManagementError: When ``store_root`` holds no index store (a mistyped folder
            must not look like one that needs no key).
        IntegrityError: When a file starts like an envelope but its header is damaged.
    """
    store_root = Path(store_root)
    _require_store(store_root)
    usage: dict[str, list[Path]] = {}
    for path, _magic, kek_id in _envelope_files(store_root):
        usage.setdefault(kek_id, []).append(path)
    return usage


def _require_store(store_root: Path) -> None:
    if not (store_root / COLLECTIONS_DIR).is_dir():
        raise KeyManagementError(
            f"{store_root} holds no index store",
            expected="the --data-dir of the index whose files the KEK wraps",
            fix="pass the data dir that `fedembed index serve` uses",
        )


def _require_free(store_root: Path) -> None:
    """Refuse when a running store holds the folder's lock (``<store>/.lock``).

    The lock is taken and released at once: :class:`IndexStore` takes it again (an
    ``flock`` conflicts with any other open of the file, even in this process).
    """
    try:
        fd = os.open(store_root / LOCK_FILE, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o600)
    except OSError as exc:
        raise storage_error(exc, path=store_root, operation="open the index directory") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StorageError(
            f"{store_root} is in use by a running index service; nothing was changed",
            expected="the store stopped while its key-encryption key is rotated",
            fix="stop `fedembed index serve` for this --data-dir, then run the command again",
        ) from None
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _rewrap(
    store_root: Path, *, keks: KekProvider, tenant: str, state_anchor: Path | None
) -> RewrapResult:
    with IndexStore(
        store_root, keks=keks, tenant=tenant, background=False, state_anchor=state_anchor
    ) as store:
        changed = store.rewrap() + store.ckks_collections().rewrap()
        for path, magic, kek_id in _envelope_files(store_root):
            if magic == SEAL_MAGIC and kek_id != keks.primary_id:
                changed += int(rewrap_sealed(path, keks=keks))  # a sealed file of neither kind
    older = {
        kek_id: len(paths)
        for kek_id, paths in kek_usage(store_root).items()
        if kek_id != keks.primary_id
    }
    if older:
        logger.warning("keys: files still under older KEK versions: %s", older)
    logger.info("keys: %d file(s) re-wrapped under %s in %s", changed, keks.primary_id, store_root)
    return RewrapResult(keks.primary_id, changed, older)


def rewrap_store(
    store_root: Path,
    *,
    keks: KekProvider,
    tenant: str,
    state_anchor: Path | None = None,
) -> RewrapResult:
    """Re-wrap every sealed file of the store under ``keks.primary_id`` (no new version).

    Finishes an interrupted rotation; running it again changes nothing.

    Args:
        store_root: The store folder (``<data dir>/store``).
        keks: The KEKs; every version a file names must be among them.
        tenant: The tenant bound into every file.
        state_anchor: The store's state anchor (re-wrapped too), if it has one.

    Raises:
        StorageError: When the store is in use by a running service (nothing changed).
        KeyManagementError: When ``store_root`` holds no store, or a file names a KEK
            version the provider does not hold.
        IntegrityError: When a file is damaged.
    """
    store_root = Path(store_root)
    _require_store(store_root)
    _require_free(store_root)
    return _rewrap(store_root, keks=keks, tenant=tenant, state_anchor=state_anchor)


def rotate_store(
    store_root: Path,
    *,
    keks: KeyFileKeks,
    tenant: str,
    state_anchor: Path | None = None,
) -> RewrapResult:
    """Add a KEK version to the key file, make it primary and re-wrap every sealed file.

    The store's lock is checked first, so against a running service it refuses before
    the key file changes. The older versions stay in the key file: after a crash or a
    failure, :func:`rewrap_store` (``fedembed index keys rewrap``) finishes the job.

    Raises:
        StorageError: When the store is in use by a running service (nothing changed).
        KeyManagementError: When ``store_root`` holds no store, or when the re-wrap after
            the new version was added failed (the error says why and how to finish).
    """
    store_root = Path(store_root)
    _require_store(store_root)
    _require_free(store_root)
    old = keks.primary_id
    new = keks.rotate()
    try:
        return _rewrap(store_root, keks=keks, tenant=tenant, state_anchor=state_anchor)
    except FedembedError as exc:
        raise KeyManagementError(
            f"{new} was added to {keks.path} and is now primary, but re-wrapping the store "
            f"failed: {exc.problem}",
            expected=exc.expected,
            fix=f"{exc.fix.rstrip('.')}; then run `{REWRAP_COMMAND}` to finish (files still "
            f"wrapped under {old} stay readable: it remains in the key file until retired)",
        ) from exc
