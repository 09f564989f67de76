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
   (:meth:`~secure_index.index.ckks_collections.CkksCollections.rewrap`), any other
   sealed file under the store folder whose header still names an older KEK, and the
   audit log's keyed head anchor in the same data dir
   (:func:`~secure_index.service.audit_anchor.rewrap_anchor`);
4. count the files that still name an older KEK: the envelope files (sealed files and
   log files), the state anchor (which lives outside the data folder) and the audit
   anchor.

A crash after step 2 leaves some files under an older version, which the key file still
holds, so the store opens and serves; ``fedembed index keys rewrap`` (or another
``rotate``) finishes the job. ``keys retire`` refuses while :func:`kek_usage` finds a file
that names the version.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from crypto.errors import KeyManagementError
from embedding_core.errors import FedembedError
from secure_index.atomic_file import TEMP_SUFFIX, storage_error
from secure_index.errors import IntegrityError, StateAnchorError, StorageError
from secure_index.index.index_store import IndexStore
from secure_index.index.store_layout import COLLECTIONS_DIR, LOCK_FILE
from secure_index.sealing import KekProvider, KeyFileKeks, rewrap_sealed
from secure_index.sealing.envelope_header import (
    MAX_HEADER_SIZE,
    HeaderFormatError,
    unpack_envelope,
)
from secure_index.sealing.sealed_file import SEAL_MAGIC
from secure_index.service.audit_anchor import anchor_path, read_anchor, rewrap_anchor
from secure_index.service.audit_record import BadRecordError
from secure_index.storage import state_anchor as state_anchor_file
from secure_index.storage.wal_file import WAL_MAGIC

__all__ = [
    "ENVELOPE_MAGICS",
    "REWRAP_COMMAND",
    "RewrapResult",
    "kek_usage",
    "rewrap_store",
    "rotate_store",
    "usage_summary",
]

logger = logging.getLogger(__name__)

ENVELOPE_MAGICS = (SEAL_MAGIC, WAL_MAGIC)
REWRAP_COMMAND = "fedembed index keys rewrap"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_SLOT_LENGTH_BYTES = 4  # a state anchor slot: magic, body length (big-endian), body, MAC


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


def kek_usage(
    store_root: Path, *, state_anchor: Path | None = None, audit_log: Path | None = None
) -> dict[str, list[Path]]:
    """Every file that needs a KEK version, by the version it names.

    The envelope files (sealed or log files) under ``store_root``, the store's state
    anchor (``state_anchor``, outside the data folder) and the head anchor of the audit
    log at ``audit_log``; an anchor that does not exist needs nothing. Reads only public
    headers (no key needed, nothing authenticated), so it counts; it does not prove that
    a file opens.

    Raises:
        KeyManagementError: When ``store_root`` holds no index store (a mistyped folder
            must not look like one that needs no key), or the audit anchor is malformed.
        IntegrityError: When a file starts like an envelope but its header is damaged.
        StateAnchorError: When the state anchor holds no readable slot.
    """
    store_root = Path(store_root)
    _require_store(store_root)
    usage: dict[str, list[Path]] = {}
    for path, _magic, kek_id in _envelope_files(store_root):
        usage.setdefault(kek_id, []).append(path)
    if state_anchor is not None:
        for kek_id in sorted(_state_anchor_kek_ids(Path(state_anchor))):
            usage.setdefault(kek_id, []).append(Path(state_anchor))
    if audit_log is not None:
        audit_kek = _audit_anchor_kek_id(Path(audit_log))
        if audit_kek is not None:
            usage.setdefault(audit_kek, []).append(anchor_path(Path(audit_log)))
    return usage


def _state_anchor_kek_ids(path: Path) -> set[str]:
    """The KEK versions the slots of a state anchor name (the public ``key.kek_id``).

    A slot that does not parse (torn by a crash) is skipped, as the store skips it.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise storage_error(exc, path=path, operation="read the state anchor") from exc
    magic, half = state_anchor_file.MAGIC, len(raw) // 2
    found: set[str] = set()
    for slot in (raw[:half], raw[half:]):
        if not slot.startswith(magic):
            continue
        start = len(magic) + _SLOT_LENGTH_BYTES
        length = int.from_bytes(slot[len(magic) : start], "big")
        try:
            kek_id = json.loads(slot[start : start + length])["key"]["kek_id"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            continue
        if isinstance(kek_id, str):
            found.add(kek_id)
    if raw and not found:
        raise StateAnchorError(
            f"the state anchor {path} names no KEK version (damaged, or not an anchor)",
            expected="the anchor file the store wrote beside its key file (or --state-anchor)",
            fix="restore it from its backup, or pass the right --state-anchor",
        )
    return found


def _audit_anchor_kek_id(audit_log: Path) -> str | None:
    """The KEK version the audit log's head anchor names (``None``: no anchor)."""
    try:
        anchor = read_anchor(audit_log)
    except BadRecordError as exc:
        raise KeyManagementError(
            f"the audit log's head anchor cannot be read: {exc}",
            expected="the .head anchor the service wrote beside its audit log",
            fix="check it with `fedembed index verify-audit`; restore the log and its "
            ".head anchor together from a backup",
        ) from None
    return None if anchor is None else anchor.wrapped.kek_id


def usage_summary(
    paths: list[Path], *, store_root: Path, state_anchor: Path | None, audit_log: Path | None
) -> str:
    """One version's ``paths`` of :func:`kek_usage` in words: files counted, anchors named."""
    anchors = {
        state_anchor: "the state anchor",
        None if audit_log is None else anchor_path(audit_log): "the audit log's head anchor",
    }
    named = [f"{anchors[p]} {p}" for p in paths if p in anchors]
    files = [p for p in paths if p not in anchors]
    counted = [f"{len(files)} sealed file(s) in {store_root}, e.g. {files[0]}"] if files else []
    return " and ".join(counted + named)


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
    store_root: Path,
    *,
    keks: KekProvider,
    tenant: str,
    state_anchor: Path | None,
    audit_log: Path | None,
) -> RewrapResult:
    with IndexStore(
        store_root, keks=keks, tenant=tenant, background=False, state_anchor=state_anchor
    ) as store:  # opening it re-wraps the state anchor
        changed = store.rewrap() + store.ckks_collections().rewrap()
        for path, magic, kek_id in _envelope_files(store_root):
            if magic == SEAL_MAGIC and kek_id != keks.primary_id:
                changed += int(rewrap_sealed(path, keks=keks))  # a sealed file of neither kind
        if audit_log is not None:  # under the store's lock: a service of role all is stopped
            changed += int(rewrap_anchor(audit_log, keks=keks))
    usage = kek_usage(store_root, state_anchor=state_anchor, audit_log=audit_log)
    older = {kek_id: len(paths) for kek_id, paths in usage.items() if kek_id != keks.primary_id}
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
    audit_log: Path | None = None,
) -> RewrapResult:
    """Re-wrap every sealed file of the store under ``keks.primary_id`` (no new version).

    Finishes an interrupted rotation; running it again changes nothing.

    Args:
        store_root: The store folder (``<data dir>/store``).
        keks: The KEKs; every version a file names must be among them.
        tenant: The tenant bound into every file.
        state_anchor: The store's state anchor (re-wrapped too), if it has one.
        audit_log: The data dir's audit log, whose keyed head anchor is re-wrapped too
            (nothing happens when it has none).

    Raises:
        StorageError: When the store is in use by a running service (nothing changed).
        KeyManagementError: When ``store_root`` holds no store, or a file names a KEK
            version the provider does not hold.
        IntegrityError: When a file is damaged.
    """
    store_root = Path(store_root)
    _require_store(store_root)
    _require_free(store_root)
    return _rewrap(
        store_root, keks=keks, tenant=tenant, state_anchor=state_anchor, audit_log=audit_log
    )


def rotate_store(
    store_root: Path,
    *,
    keks: KeyFileKeks,
    tenant: str,
    state_anchor: Path | None = None,
    audit_log: Path | None = None,
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
        return _rewrap(
            store_root, keks=keks, tenant=tenant, state_anchor=state_anchor, audit_log=audit_log
        )
    except FedembedError as exc:
        raise KeyManagementError(
            f"{new} was added to {keks.path} and is now primary, but re-wrapping the store "
            f"failed: {exc.problem}",
            expected=exc.expected,
            fix=f"{exc.fix.rstrip('.')}; then run `{REWRAP_COMMAND}` to finish (files still "
            f"wrapped under {old} stay readable: it remains in the key file until retired)",
        ) from exc
