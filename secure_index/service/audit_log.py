"""Append-only, hash-chained audit log of the gateway's decisions, with a keyed head anchor.

Algorithm: a hash chain (linked timestamping; S. Haber and W. S. Stornetta, "How to
time-stamp a digital document", Journal of Cryptology 3(2), 1991; applied to logs by
B. Schneier and J. Kelsey, "Secure audit logs to support computer forensics", ACM
TISSEC 2(2), 1999). Each record is one line of JSON (JSONL)::

    {"action":..,"actor":..,"collection":..,"decision":..,"detail":{..},"hash":..,
     "prev_hash":..,"role":..,"seq":N,"time":"2025-..+00:00"}

``hash`` is SHA-256 over the canonical JSON (sorted keys, compact separators, UTF-8) of
the record without ``hash``; ``prev_hash`` is the previous record's ``hash`` (64 zeros
for the first record, seq 1). Record ``seq`` is on line ``seq``; on disk, non-ASCII
characters are JSON escapes, so no Unicode line separator can split a line.

The head anchor ``<path>.head`` (:mod:`secure_index.service.audit_anchor`) holds the
chain's head, a copy of the head record and an HMAC-SHA-256 under a key wrapped by the
key-encryption key (KEK): without the KEK nobody can write an anchor that verifies. It
is created with the log (seq 0), so an emptied log, a shortened log, a log without its
anchor and an anchor that does not verify are all refused.

Write order of one append (the audit record is durable before the action it records is
carried out; the caller acknowledges the action only after both): (1) the anchor naming
the new record, with its copy, is replaced atomically (temporary file, fsync, rename,
fsync of the folder), (2) the line is written and fsync'ed. A crash between the two
leaves the record only in the anchor; the next open (of the service or the CLI)
completes the log from the anchor's MAC'd copy, so no record that
:meth:`AuditLog.append` returned can be lost, and no record can be added behind the
anchor. Appends are serialised between threads by a lock and between processes by
``flock`` on the log.

:func:`~secure_index.service.audit_verify.verify_audit_log` detects an edited field
(hash mismatch), a removed, reordered or inserted record (seq gap or prev_hash
mismatch), a truncated tail, records appended behind the anchor, a rewritten anchor (with
the KEK), and malformed lines, and names the first bad line.

What the keyed anchor does NOT stop: an attacker who holds the KEK and can write the
files rewrites everything; one who copied the log and its anchor earlier can put both
back (a rollback). The auditor therefore copies the head hash that ``fedembed index
verify-audit`` prints to a place the service host cannot write (a ticket, a signed
e-mail, WORM storage) and passes it back as ``--expected-head`` next time.

What the log holds: who (key id, role), what (action, collection), the decision and a
small ``detail`` of ids, counts, ``k``, digests and decision reasons. Query text and
vectors are NEVER written: keeping them out is the caller's responsibility, and as a
guard against accidents :meth:`AuditLog.append` refuses detail values that look like a
vector (a list of more than :data:`MAX_DETAIL_VECTOR` numbers with a float among them) or
a text (a string longer than :data:`MAX_DETAIL_TEXT` characters).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from embedding_core.errors import DataFormatError
from secure_index.atomic_file import atomic_write, storage_error
from secure_index.sealing import KekProvider
from secure_index.service.audit_anchor import AnchorKey, anchor_path, encode_anchor, read_anchor
from secure_index.service.audit_record import (
    GENESIS_HASH,
    HASH_FIELD,
    MAX_DETAIL_TEXT,
    MAX_DETAIL_VECTOR,
    AuditRecord,
    BadRecordError,
    canonical_json,
    check_detail_value,
    ids_digest,
    parse_record,
    record_hash,
    record_line,
)
from secure_index.service.audit_verify import AuditVerification, verify_audit_log

__all__ = [
    "GENESIS_HASH",
    "MAX_DETAIL_TEXT",
    "MAX_DETAIL_VECTOR",
    "AuditLog",
    "AuditRecord",
    "AuditVerification",
    "anchor_path",
    "canonical_json",
    "ids_digest",
    "record_hash",
    "verify_audit_log",
]

logger = logging.getLogger(__name__)

FILE_MODE = 0o600
_TAIL_CHUNK = 1 << 16
_FIX_TAMPER = (
    "treat the log as tampered with: restore the log and its .head anchor together from a "
    "backup, and check it against the head hash you recorded off the host (fedembed index "
    "verify-audit --key-file KEK --expected-head HASH)"
)


def _tail(fd: int, size: int) -> tuple[bytes | None, bytes]:
    """The last complete line (without its newline) and the bytes after it (a torn line)."""
    data, start = b"", size
    while True:
        last = data.rfind(b"\n")
        if last >= 0:
            before = data.rfind(b"\n", 0, last)
            if before >= 0 or start == 0:
                return data[before + 1 : last], data[last + 1 :]
        if start == 0:
            return None, data
        begin = max(0, start - _TAIL_CHUNK)
        data = os.pread(fd, start - begin, begin) + data
        start = begin


class AuditLog:
    """The gateway's append-only audit log (one writer process at a time is typical).

    Args:
        path: The JSONL file; created (mode 0600, with its seq-0 anchor) if missing, else
            its chain resumes.
        keks: The key-encryption keys: the anchor's MAC key is wrapped under them. The
            gateway uses its own KEK (the one of ``--key-file`` / ``FEDEMBED_INDEX_KEK``).

    Raises:
        DataFormatError: When the last record or the head anchor does not verify, or
            they disagree (the log was truncated, emptied, edited or forged, or the
            anchor was removed): the service must not extend a chain it cannot vouch for.
        StorageError: When the file cannot be opened.
    """

    def __init__(self, path: Path, *, keks: KekProvider) -> None:
        self.path = Path(path)
        self.anchor_path = anchor_path(self.path)
        self._keks = keks
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, FILE_MODE)
        except OSError as exc:
            raise storage_error(exc, path=self.path, operation="open the audit log") from exc
        self._seq, self._hash, self._size = 0, GENESIS_HASH, 0
        self._key: AnchorKey | None = None
        try:
            with self._locked_file():
                self._resume()
        except BaseException:
            os.close(self._fd)
            raise
        logger.info("audit: opened %s at seq %d", self.path, self._seq)

    @property
    def head(self) -> tuple[int, str]:
        """The (seq, hash) of the last record; (0, 64 zeros) for an empty log."""
        with self._lock:
            return self._seq, self._hash

    def append(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        collection: str,
        decision: str,
        detail: Mapping[str, Any],
    ) -> AuditRecord:
        """Append one durable record (anchor replaced, line fsync'ed) and return it.

        Args:
            actor: Key id (or "admin") that acted.
            role: The actor's role.
            action: What was attempted ("query", "upload", ...).
            collection: The collection concerned ("*" for none or all).
            decision: "allow" or "deny:<reason>".
            detail: Ids, counts, ``k``, digests, reasons: never query text, never vectors.

        Raises:
            ValueError: When a value looks like a vector or a text, or is not JSON.
            StorageError: When the anchor or the record cannot be written.
        """
        head = {"actor": actor, "role": role, "action": action}
        head |= {"collection": collection, "decision": decision}
        for name, value in head.items():
            if not isinstance(value, str):
                raise ValueError(f"audit: {name} must be a string, got {type(value).__name__}")
            check_detail_value(value, name)
        check_detail_value(detail, "detail")
        plain_detail: dict[str, Any] = json.loads(canonical_json(dict(detail)))
        with self._lock, self._locked_file():
            if os.fstat(self._fd).st_size != self._size:  # another process appended
                self._resume()
            fields: dict[str, Any] = {
                "seq": self._seq + 1,
                "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                **head,
                "detail": plain_detail,
                "prev_hash": self._hash,
            }
            fields[HASH_FIELD] = record_hash(fields)
            self._write_anchor(fields["seq"], fields[HASH_FIELD], fields)
            self._write_line(record_line(fields))
            self._seq, self._hash = fields["seq"], fields[HASH_FIELD]
        logger.debug("audit: appended seq %d (%s %s)", fields["seq"], action, decision)
        return AuditRecord(**fields)

    def close(self) -> None:
        """Close the file (appending afterwards fails)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _refuse(self, problem: str) -> DataFormatError:
        return DataFormatError(
            self.path,
            0,
            f"the audit log cannot be resumed: {problem}",
            expected="an intact log whose last record matches its keyed head anchor",
            fix=_FIX_TAMPER + "; the service will not extend a chain it cannot vouch for",
        )

    def _resume(self) -> None:
        """Load the chain's head from the last record, checked against the keyed anchor."""
        size = os.fstat(self._fd).st_size
        try:
            anchor = read_anchor(self.path)
        except BadRecordError as exc:
            raise self._refuse(str(exc)) from exc
        if anchor is None:
            if size:
                raise self._refuse(
                    f"it holds records but its head anchor {self.anchor_path} is missing "
                    "(deleted, or the log was copied without it)"
                )
            self._key = AnchorKey.create(self._keks)
            self._seq, self._hash, self._size = 0, GENESIS_HASH, 0
            self._write_anchor(0, GENESIS_HASH, None)
            return
        try:
            key = anchor.key(self._keks)
            raw, torn = _tail(self._fd, size)
            tail = None if raw is None else parse_record(raw)
        except BadRecordError as exc:
            raise self._refuse(f"head anchor or last line: {exc}") from exc
        self._key = key
        seq, head = (0, GENESIS_HASH) if tail is None else (tail.seq, tail.hash)
        pending = anchor.record
        if torn and not (pending and record_line(asdict(pending)).startswith(torn)):
            raise self._refuse("its last line has no line end and is not the anchored record")
        if torn:  # a write cut short: the whole record is in the anchor
            os.ftruncate(self._fd, size - len(torn))
            size -= len(torn)
        self._size = size
        if (seq, head) == (anchor.seq, anchor.hash):
            self._seq, self._hash = seq, head
        elif pending is not None and seq == anchor.seq - 1 and pending.prev_hash == head:
            logger.warning("audit: completing record %d from the head anchor (crash?)", pending.seq)
            self._write_line(record_line(asdict(pending)))
            self._seq, self._hash = pending.seq, pending.hash
        elif seq < anchor.seq:
            raise self._refuse(
                f"it ends at seq {seq} but its head anchor names seq {anchor.seq}: "
                "records were removed from its end (or the log was emptied)"
            )
        else:
            raise self._refuse(
                f"its last record (seq {seq}) does not match its head anchor (seq "
                f"{anchor.seq}): records were appended or rewritten behind the service's back"
            )
        if key.wrapped.kek_id != self._keks.primary_id:  # follow a KEK rotation
            self._key = key.under_primary(self._keks)
            self._write_anchor(self._seq, self._hash, asdict(pending) if pending else None)

    def _write_line(self, line: bytes) -> None:
        try:
            done = 0
            while done < len(line):
                done += os.write(self._fd, line[done:])
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # never leave a torn line behind
                os.ftruncate(self._fd, self._size)
            raise storage_error(exc, path=self.path, operation="append to the audit log") from exc
        self._size += len(line)

    def _write_anchor(self, seq: int, head: str, record: dict[str, Any] | None) -> None:
        """Atomically replace the keyed head anchor (temp file, fsync, rename, fsync folder)."""
        assert self._key is not None
        atomic_write(
            self.anchor_path, [encode_anchor(self._key, seq, head, record)], mode=FILE_MODE
        )
