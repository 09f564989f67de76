"""Evidence about a secure index's data directory: encryption at rest and audit-log integrity.

Given the data directory of ``fedembed index serve --data-dir DIR``, two facts are
established without any key and without reading content:

* **Encryption at rest.** Every file of every collection (``DIR/store/collections/``,
  recursively) must be an envelope the store wrote: a sealed snapshot file (starts with
  :data:`~secure_index.sealing.sealed_file.SEAL_MAGIC`) or a write-ahead-log file (starts
  with :data:`~secure_index.storage.wal.WAL_MAGIC`). Both are AES-256-GCM, so a file
  that carries a magic is encrypted and authenticated (any alteration is detected when
  the store opens it). Only the first bytes of each file are read: never its content.
  Skipped: zero-length files (they hold nothing) and the store's lock file
  (:data:`~secure_index.index.index_store.LOCK_FILE`). Counted as *not* encrypted, and
  never opened: symbolic links, FIFOs and other non-regular files (the store creates
  none; they could expose data kept elsewhere). The credentials database lies outside
  ``store/`` and holds only key hashes; it is not scanned.
* **Audit-log integrity.** The hash-chained audit log at
  :func:`~secure_index.service.settings.audit_path` is verified with
  :func:`~secure_index.service.audit_log.verify_audit_log`. When neither the log nor its
  head anchor exists (e.g. the data directory of a store-only host) there is nothing to
  verify and the integrity is ``None``; an anchor without its log is a deleted log and
  fails verification. The auditor holds no KEK, so the chain and its agreement with the
  head anchor are checked but not the anchor's MAC (``fedembed index verify-audit`` on
  the gateway host checks it): a log rewritten together with its anchor is found only
  with ``expected_head``, the head hash recorded off the host.

:meth:`IndexEvidence.to_evidence` gives the two policy evidence keys
(:data:`~policies.checks.EVIDENCE_INDEX_ENCRYPTED_FRACTION`,
:data:`~policies.checks.EVIDENCE_AUDIT_LOG_INTACT`) and :meth:`IndexEvidence.to_dict`
the report's description of what was found.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from policies.checks import EVIDENCE_AUDIT_LOG_INTACT, EVIDENCE_INDEX_ENCRYPTED_FRACTION
from secure_index.errors import SecureIndexError
from secure_index.index.index_store import COLLECTIONS_DIR, LOCK_FILE
from secure_index.sealing.sealed_file import SEAL_MAGIC
from secure_index.service.audit_log import anchor_path, verify_audit_log
from secure_index.service.settings import STORE_DIR, audit_path
from secure_index.storage.wal import WAL_MAGIC

__all__ = [
    "ENCRYPTED_MAGICS",
    "MAX_LISTED_FILES",
    "IndexDirectoryError",
    "IndexEvidence",
    "gather_index_evidence",
]

logger = logging.getLogger(__name__)

ENCRYPTED_MAGICS: Final[tuple[bytes, ...]] = (SEAL_MAGIC, WAL_MAGIC)
SKIPPED_NAMES: Final[frozenset[str]] = frozenset({LOCK_FILE})
MAX_LISTED_FILES: Final = 100  # unencrypted files named in the report; the rest counted
_HEAD_BYTES: Final = max(len(magic) for magic in ENCRYPTED_MAGICS)
_O_FLAGS: Final = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_SERVE_FIX: Final = (
    "pass the --data-dir of `fedembed index serve` (the folder that holds store/ and audit/)"
)


class IndexDirectoryError(SecureIndexError):
    """An index data directory is missing, is not one, or cannot be read."""


@dataclass(frozen=True)
class IndexEvidence:
    """What the scan of an index data directory found (names and counts, no content).

    Attributes:
        path: The index data directory.
        files_scanned: Files under ``store/collections`` that were judged.
        files_encrypted: Of those, files that start with a sealed-file or WAL magic.
        files_skipped: Zero-length files and lock files, not judged.
        encrypted_fraction: ``files_encrypted / files_scanned`` (1.0 when none scanned).
        unencrypted_files: POSIX paths, relative to ``path``, of the files not encrypted.
        audit_log_path: Where the audit log is expected.
        audit_log_entries: Records verified (before the first problem, if any).
        audit_log_intact: Whether the hash chain verified; None when there is no log.
        audit_log_head_hash: Hash of the last verified record (record it outside the
            host to detect a later rewrite); None when there is no log.
        audit_log_problem: What is wrong with the log, or None.
    """

    path: Path
    files_scanned: int
    files_encrypted: int
    files_skipped: int
    encrypted_fraction: float
    unencrypted_files: tuple[str, ...]
    audit_log_path: Path
    audit_log_entries: int
    audit_log_intact: bool | None
    audit_log_head_hash: str | None
    audit_log_problem: str | None

    def to_evidence(self) -> dict[str, float | None]:
        """The policy evidence: encrypted fraction and audit-log integrity (1.0 / 0.0).

        A value is None (not evaluated) when there was nothing to judge: no collection
        file (an empty store proves nothing), or no audit log.
        """
        fraction = self.encrypted_fraction if self.files_scanned else None
        intact = None if self.audit_log_intact is None else float(self.audit_log_intact)
        return {EVIDENCE_INDEX_ENCRYPTED_FRACTION: fraction, EVIDENCE_AUDIT_LOG_INTACT: intact}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description for the report's ``subject.index`` section."""
        listed = list(self.unencrypted_files[:MAX_LISTED_FILES])
        return {
            "path": str(self.path),
            "store": {
                "files_scanned": self.files_scanned,
                "files_encrypted": self.files_encrypted,
                "files_skipped": self.files_skipped,
                "encrypted_fraction": self.encrypted_fraction,
                "unencrypted_files": listed,
                "unencrypted_files_not_listed": len(self.unencrypted_files) - len(listed),
            },
            "audit_log": {
                "path": str(self.audit_log_path),
                "present": self.audit_log_intact is not None,
                "entries": self.audit_log_entries,
                "intact": self.audit_log_intact,
                "head_hash": self.audit_log_head_hash,
                "problem": self.audit_log_problem,
            },
        }


@dataclass
class _Tally:
    scanned: int = 0
    encrypted: int = 0
    skipped: int = 0


def _unreadable(path: Path, exc: OSError) -> IndexDirectoryError:
    return IndexDirectoryError(
        f"cannot read {path} ({exc.strerror or exc})",
        expected="an index data directory the auditing user can read",
        fix="run the audit as a user with read access to the index data directory",
    )


def _is_encrypted(path: Path) -> bool | None:
    """Whether a regular file starts with an envelope magic; None when it vanished."""
    try:
        fd = os.open(path, _O_FLAGS)
    except FileNotFoundError:  # removed by a running store (e.g. an old generation)
        return None
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    try:
        head = os.read(fd, _HEAD_BYTES)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    finally:
        os.close(fd)
    return head.startswith(ENCRYPTED_MAGICS)


def _scan(directory: Path, root: Path, tally: _Tally, unencrypted: list[str]) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _unreadable(directory, exc) from exc
    for entry in entries:
        path = Path(entry.path)
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _unreadable(path, exc) from exc
        if stat.S_ISDIR(info.st_mode):
            _scan(path, root, tally, unencrypted)
            continue
        if stat.S_ISREG(info.st_mode) and (info.st_size == 0 or entry.name in SKIPPED_NAMES):
            tally.skipped += 1
            continue
        encrypted = _is_encrypted(path) if stat.S_ISREG(info.st_mode) else False
        if encrypted is None:
            continue
        tally.scanned += 1
        if encrypted:
            tally.encrypted += 1
        else:
            unencrypted.append(path.relative_to(root).as_posix())


def gather_index_evidence(index_dir: Path, *, expected_head: str | None = None) -> IndexEvidence:
    """Scan an index data directory for unencrypted files and verify its audit log.

    Args:
        index_dir: The ``--data-dir`` of ``fedembed index serve`` (holds ``store/``).
        expected_head: A head hash of the audit log recorded earlier outside the host;
            the log must still contain it (detects truncation or a full rewrite).

    Returns:
        The evidence; it names files but never holds or logs their content.

    Raises:
        IndexDirectoryError: The directory does not exist, has no ``store/`` folder, or
            a file in it cannot be read.
    """
    root = Path(index_dir)
    store = root / STORE_DIR
    if not root.is_dir():
        raise IndexDirectoryError(
            f"the index data directory {root} does not exist or is not a directory",
            expected="the data directory of a secure index service",
            fix=_SERVE_FIX,
        )
    if not store.is_dir():
        raise IndexDirectoryError(
            f"{root} holds no {STORE_DIR}/ folder, so it is not an index data directory "
            "(or the data directory of a gateway-only host)",
            expected=f"a directory with {STORE_DIR}/{COLLECTIONS_DIR}/ as written by the index",
            fix=_SERVE_FIX + "; for a split deployment, audit the store host's data directory",
        )
    tally, unencrypted = _Tally(), list[str]()
    _scan(store / COLLECTIONS_DIR, root, tally, unencrypted)
    fraction = tally.encrypted / tally.scanned if tally.scanned else 1.0
    log = audit_path(root)
    if log.exists() or anchor_path(log).exists():
        verdict = verify_audit_log(log, expected_head=expected_head)
        intact: bool | None = verdict.ok
        entries, head, problem = verdict.entries, verdict.head_hash, verdict.problem
        if verdict.line is not None and problem is not None:
            problem = f"line {verdict.line}: {problem}"
    else:
        intact, entries, head, problem = None, 0, None, None
    evidence = IndexEvidence(
        path=root,
        files_scanned=tally.scanned,
        files_encrypted=tally.encrypted,
        files_skipped=tally.skipped,
        encrypted_fraction=fraction,
        unencrypted_files=tuple(unencrypted),
        audit_log_path=log,
        audit_log_entries=entries,
        audit_log_intact=intact,
        audit_log_head_hash=head,
        audit_log_problem=problem,
    )
    logger.info(
        "index evidence for %s: %d/%d collection files encrypted (%d skipped), audit log %s",
        root,
        tally.encrypted,
        tally.scanned,
        tally.skipped,
        "absent" if intact is None else ("intact" if intact else f"BROKEN ({problem})"),
    )
    return evidence
