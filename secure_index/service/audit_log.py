"""Append-only, hash-chained audit log of the gateway's decisions, and its verification.

Algorithm: a hash chain (linked timestamping; S. Haber and W. S. Stornetta, "How to
time-stamp a digital document", Journal of Cryptology 3(2), 1991; applied to logs by
B. Schneier and J. Kelsey, "Secure audit logs to support computer forensics", ACM
TISSEC 2(2), 1999). Each record is one line of JSON (JSONL)::

    {"action":..,"actor":..,"collection":..,"decision":..,"detail":{..},"hash":..,
     "prev_hash":..,"role":..,"seq":N,"time":"2025-..+00:00"}

``hash`` is SHA-256 over the canonical JSON (sorted keys, compact separators, UTF-8) of
the record without ``hash``; ``prev_hash`` is the previous record's ``hash`` (64 zeros
for the first record, seq 1). Record ``seq`` is on line ``seq``; on disk, non-ASCII
characters are JSON escapes, so no Unicode line separator can split a line. Every append
is written, flushed and fsync'ed before :meth:`AuditLog.append` returns, and then the head
anchor ``<path>.head`` (``{"seq":N,"hash":..}``) is replaced atomically (temporary
file, fsync, rename, fsync of the folder). Appends are serialised between threads by a
lock and between processes by ``flock`` on the log.

:func:`verify_audit_log` detects an edited field (hash mismatch), a removed, reordered
or inserted record (seq gap or prev_hash mismatch), a truncated tail (the head anchor,
or the head hash the auditor recorded, is no longer in the chain), records appended
without the anchor, and malformed lines, and names the first bad line.

What a plain hash chain does NOT stop: it has no secret key, so whoever can write the
log can also rewrite it *entirely* (recompute every hash from the point of change on)
and write a matching head anchor, or append well-formed records; verification then
passes. The chain only proves that the log still extends a head hash recorded
*outside* the attacker's reach. The auditor must therefore copy the head hash that
``fedembed index verify-audit`` prints to a place the service host cannot write (a
ticket, a signed e-mail, WORM storage) and pass it back as ``expected_head`` next time.
Against an attacker on the host, also restrict the file (mode 0600, append-only
attribute, ship lines to a remote collector).

What the log holds: who (key id, role), what (action, collection), the decision and a
small ``detail`` of ids, counts, ``k`` and decision reasons. Query text and vectors are
NEVER written: keeping them out is the caller's responsibility, and as a guard against
accidents :meth:`AuditLog.append` refuses detail values that look like a vector (a list
of more than :data:`MAX_DETAIL_VECTOR` numbers with a float among them) or a text (a
string longer than :data:`MAX_DETAIL_TEXT` characters).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from embedding_core.errors import DataFormatError
from secure_index.atomic_file import atomic_write, storage_error
from secure_index.service.audit_record import (
    GENESIS_HASH,
    HASH_FIELD,
    MAX_DETAIL_TEXT,
    MAX_DETAIL_VECTOR,
    SHA256_HEX,
    AuditRecord,
    BadRecordError,
    canonical_json,
    check_detail_value,
    parse_record,
    record_hash,
    record_line,
)

__all__ = [
    "GENESIS_HASH",
    "MAX_DETAIL_TEXT",
    "MAX_DETAIL_VECTOR",
    "AuditLog",
    "AuditRecord",
    "AuditVerification",
    "anchor_path",
    "canonical_json",
    "record_hash",
    "verify_audit_log",
]

logger = logging.getLogger(__name__)

HEAD_SUFFIX = ".head"
FILE_MODE = 0o600
_TAIL_CHUNK = 1 << 16
_FIX_TAMPER = (
    "treat the log as tampered with: compare it with a backup and with the head hash "
    "you recorded (fedembed index verify-audit --expected-head HASH)"
)


@dataclass(frozen=True)
class AuditVerification:
    """Outcome of :func:`verify_audit_log`.

    Attributes:
        ok: Whether the whole log verified.
        entries: Records verified before the first problem (all of them when ok).
        head_hash: Hash of the last verified record (record it externally).
        problem: What is wrong, or None.
        line: The 1-based line of the first problem, or None.
    """

    ok: bool
    entries: int
    head_hash: str
    problem: str | None
    line: int | None


def anchor_path(path: Path) -> Path:
    """The head anchor file of the log at ``path`` (``<path>.head``)."""
    return path.with_name(path.name + HEAD_SUFFIX)


def _read_anchor(path: Path) -> tuple[int, str] | None:
    """The (seq, hash) of the head anchor of log ``path``; None when it does not exist."""
    try:
        raw = anchor_path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        anchor = json.loads(raw.decode("utf-8"))
        seq, head = anchor["seq"], anchor["hash"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise BadRecordError(f"the head anchor {anchor_path(path)} is malformed ({exc})") from exc
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise BadRecordError(f"the head anchor {anchor_path(path)} has an invalid seq {seq!r}")
    if not isinstance(head, str) or not SHA256_HEX.fullmatch(head):
        raise BadRecordError(f"the head anchor {anchor_path(path)} has an invalid hash")
    return seq, head


def _last_line(fd: int, size: int) -> bytes | None:
    """The last line of the file (without its newline); None when the file is empty."""
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        raise BadRecordError("the last line has no line end (a torn or truncated write)")
    start, chunks = size - 1, []
    while start > 0:
        begin = max(0, start - _TAIL_CHUNK)
        chunk = os.pread(fd, start - begin, begin)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            chunks.append(chunk[cut + 1 :])
            break
        chunks.append(chunk)
        start = begin
    return b"".join(reversed(chunks))


class AuditLog:
    """The gateway's append-only audit log (one writer process at a time is typical).

    Args:
        path: The JSONL file; created (mode 0600) if missing, else its chain resumes.

    Raises:
        DataFormatError: When the last record or the head anchor does not verify, or
            they disagree (the log was truncated, edited or forged): the service must
            not extend a chain it cannot vouch for.
        StorageError: When the file cannot be opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.anchor_path = anchor_path(self.path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, FILE_MODE)
        except OSError as exc:
            raise storage_error(exc, path=self.path, operation="open the audit log") from exc
        self._seq, self._hash, self._size = 0, GENESIS_HASH, 0
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
        """Append one durable record (fsync'ed, head anchor updated) and return it.

        Args:
            actor: Key id (or "admin") that acted.
            role: The actor's role.
            action: What was attempted ("query", "upload", ...).
            collection: The collection concerned ("*" for none or all).
            decision: "allow" or "deny:<reason>".
            detail: Ids, counts, ``k``, reasons: never query text, never vectors.

        Raises:
            ValueError: When a value looks like a vector or a text, or is not JSON.
            StorageError: When the record or the anchor cannot be written.
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
            line = record_line(fields)
            self._write_line(line)
            self._seq, self._hash = fields["seq"], fields[HASH_FIELD]
            self._write_anchor()
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
            expected="an intact log whose last record matches its head anchor",
            fix=_FIX_TAMPER + "; the service will not extend a chain it cannot vouch for",
        )

    def _resume(self) -> None:
        """Load the chain's head from the last record, checked against the anchor."""
        size = os.fstat(self._fd).st_size
        try:
            raw = _last_line(self._fd, size)
            tail = None if raw is None else parse_record(raw)
        except BadRecordError as exc:
            raise self._refuse(f"last line: {exc}") from exc
        try:
            anchor = _read_anchor(self.path) or (0, GENESIS_HASH)
        except BadRecordError as exc:
            raise self._refuse(str(exc)) from exc
        seq, head = (0, GENESIS_HASH) if tail is None else (tail.seq, tail.hash)
        if (seq, head) == anchor:
            pass
        elif tail is not None and seq == anchor[0] + 1 and tail.prev_hash == anchor[1]:
            logger.warning("audit: head anchor was one record behind (crash?); updated to %d", seq)
            self._seq, self._hash = seq, head
            self._write_anchor()
        elif seq < anchor[0]:
            raise self._refuse(
                f"it ends at seq {seq} but its head anchor names seq {anchor[0]}: "
                "records were removed from its end"
            )
        else:
            raise self._refuse(
                f"its last record (seq {seq}) does not extend its head anchor (seq "
                f"{anchor[0]}): records were appended or rewritten behind the service's back"
            )
        self._seq, self._hash, self._size = seq, head, size

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

    def _write_anchor(self) -> None:
        """Atomically replace the head anchor (temp file, fsync, rename, fsync folder)."""
        data = canonical_json({"seq": self._seq, "hash": self._hash})
        atomic_write(self.anchor_path, [data], mode=FILE_MODE)


def verify_audit_log(path: Path, *, expected_head: str | None = None) -> AuditVerification:
    """Check the whole chain of the log at ``path``, its head anchor and a recorded head.

    Safe to run while the service appends (it reads the anchor before and after the
    log). Streams the file; memory does not grow with its length.

    Args:
        path: The JSONL audit log.
        expected_head: A head hash the auditor recorded earlier; it must still be a
            record of the chain (detects truncation and rewriting since then).

    Returns:
        The verdict: ``ok``, records verified, the head hash to record, and else the
        problem and the first bad line.
    """
    path = Path(path)
    entries, last, before_last = 0, GENESIS_HASH, GENESIS_HASH

    def bad(problem: str, line: int | None) -> AuditVerification:
        return AuditVerification(False, entries, last, problem, line)

    if expected_head is not None and not SHA256_HEX.fullmatch(expected_head):
        return bad("the expected head is not a SHA-256 hash (64 lowercase hex digits)", None)
    found_expected = expected_head in (None, GENESIS_HASH)
    try:
        before = _read_anchor(path)
    except BadRecordError as exc:
        return bad(str(exc), None)
    try:
        handle = path.open("rb")
    except OSError as exc:
        return bad(f"cannot read the audit log {path}: {exc.strerror or exc}", None)
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                return bad("no line end: a torn or truncated write", number)
            try:
                record = parse_record(raw[:-1])
            except BadRecordError as exc:
                return bad(str(exc), number)
            if record.seq != number:
                return bad(
                    f"seq {record.seq} on line {number}: a record was removed, reordered or "
                    "inserted before it",
                    number,
                )
            if record.prev_hash != last:
                return bad(
                    "prev_hash is not the previous record's hash: a record was removed, "
                    "reordered or inserted before it",
                    number,
                )
            if before is not None and before[0] == number and before[1] != record.hash:
                return bad("the record differs from the head anchor: the log was rewritten", number)
            entries, before_last, last = number, last, record.hash
            found_expected = found_expected or record.hash == expected_head
    try:
        after = _read_anchor(path)
    except BadRecordError as exc:
        return bad(str(exc), None)
    if before is not None and before[0] > entries:
        return bad(
            f"the log ends after record {entries} but its head anchor names record "
            f"{before[0]}: records were removed from its end",
            entries + 1,
        )
    anchor_seq, anchor_hash = after or (0, GENESIS_HASH)
    if entries > anchor_seq + 1:
        where = "missing" if after is None else f"at record {anchor_seq}"
        return bad(
            f"{entries - anchor_seq} records follow the head anchor ({where}): appended "
            "without it (forged?) or the anchor was rolled back",
            anchor_seq + 2,
        )
    if (anchor_seq == entries and anchor_hash != last) or (
        anchor_seq == entries - 1 and anchor_hash != before_last
    ):
        return bad(
            "the head anchor does not match the log: the log was rewritten", max(anchor_seq, 1)
        )
    if not found_expected:
        return bad(
            "the head hash you recorded is not in the log: records were removed or rewritten "
            "since you recorded it",
            None,
        )
    return AuditVerification(True, entries, last, None, None)
