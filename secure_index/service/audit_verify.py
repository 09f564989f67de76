"""Verification of the hash-chained audit log against its keyed head anchor.

:func:`verify_audit_log` streams the log (memory does not grow with its length), checks
every record's hash and link (:mod:`secure_index.service.audit_record`) and compares the
end of the chain with the head anchor (:mod:`secure_index.service.audit_anchor`). With
the KEK it also checks the anchor's MAC, so a log cut short, emptied or rewritten
together with a new anchor by someone without the KEK is refused; without the KEK (an
auditor who holds none) the anchor's structure and agreement with the log are checked
but a forged anchor is not detected (``anchor_authenticated`` is then False).

A head hash the auditor recorded off the host (``expected_head``) must still be in the
chain: it detects what the anchor cannot, a rewrite by someone holding the KEK and a
rollback of the log and its anchor to copies taken earlier.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from secure_index.sealing import KekProvider
from secure_index.service.audit_anchor import Anchor, anchor_path, read_anchor
from secure_index.service.audit_record import (
    GENESIS_HASH,
    SHA256_HEX,
    BadRecordError,
    parse_record,
    record_line,
)

__all__ = ["AuditVerification", "verify_audit_log"]

_RESTORE = "restore the log and its .head anchor together from a backup"


@dataclass(frozen=True)
class AuditVerification:
    """Outcome of :func:`verify_audit_log`.

    Attributes:
        ok: Whether the whole log verified.
        entries: Records verified before the first problem (all of them when ok).
        head_hash: Hash of the last verified record (record it off the host).
        problem: What is wrong and how to restore, or None.
        line: The 1-based line of the first problem, or None.
        anchor_authenticated: Whether the anchor's MAC was checked with the KEK.
        note: A remark on a verified log (e.g. a record held only in the anchor).
    """

    ok: bool
    entries: int
    head_hash: str
    problem: str | None
    line: int | None
    anchor_authenticated: bool = False
    note: str | None = None


class _Chain:
    """The chain read so far."""

    def __init__(self, expected_head: str | None, before: Anchor) -> None:
        self.entries, self.last = 0, GENESIS_HASH
        self.expected_head = expected_head
        self.found_expected = expected_head in (None, GENESIS_HASH)
        self.before = before
        self.torn = b""  # an unfinished last line (being written, or cut short)

    def read(self, handle: BinaryIO) -> tuple[int, str | None]:
        """Consume the lines appended since the last call: (lines read, problem)."""
        read = 0
        while raw := handle.readline():
            number = self.entries + 1
            if not raw.endswith(b"\n"):  # read it again once it is complete
                handle.seek(-len(raw), os.SEEK_CUR)
                read += raw != self.torn
                self.torn = raw
                return read, None
            read, self.torn = read + 1, b""
            try:
                record = parse_record(raw[:-1])
            except BadRecordError as exc:
                return read, str(exc)
            if record.seq != number:
                return read, (
                    f"seq {record.seq} on line {number}: a record was removed, reordered or "
                    "inserted before it"
                )
            if record.prev_hash != self.last:
                return read, (
                    "prev_hash is not the previous record's hash: a record was removed, "
                    "reordered or inserted before it"
                )
            if self.before.seq == number and self.before.hash != record.hash:
                return read, "the record differs from the head anchor: the log was rewritten"
            self.extend(record.hash)
        return read, None

    def extend(self, head: str) -> None:
        self.entries, self.last = self.entries + 1, head
        self.found_expected = self.found_expected or head == self.expected_head


def verify_audit_log(
    path: Path, *, keks: KekProvider | None = None, expected_head: str | None = None
) -> AuditVerification:
    """Check the whole chain of the log at ``path``, its keyed anchor and a recorded head.

    Safe to run while the service appends (it reads on until the anchor and the log
    agree).

    Args:
        path: The JSONL audit log.
        keks: The KEK(s) the service runs with; without them the anchor's MAC is not
            checked (``anchor_authenticated`` False).
        expected_head: A head hash the auditor recorded earlier; it must still be a
            record of the chain (detects truncation and rewriting since then).

    Returns:
        The verdict: ``ok``, records verified, the head hash to record, and else the
        problem and the first bad line.
    """
    path = Path(path)
    head_file = anchor_path(path)
    authenticated = False

    def bad(problem: str, line: int | None, chain: _Chain | None = None) -> AuditVerification:
        entries, last = (chain.entries, chain.last) if chain else (0, GENESIS_HASH)
        return AuditVerification(False, entries, last, problem, line, authenticated)

    if expected_head is not None and not SHA256_HEX.fullmatch(expected_head):
        return bad("the expected head is not a SHA-256 hash (64 lowercase hex digits)", None)
    try:
        before = read_anchor(path)
        if before is not None and keks is not None:
            before.key(keks)
    except BadRecordError as exc:
        return bad(f"the head anchor does not verify: {exc}; {_RESTORE}", None)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        if before is None:
            return bad(
                f"there is no audit log at {path} and no anchor: the service never ran with "
                f"this --data-dir, or both were deleted ({_RESTORE})",
                None,
            )
        return bad(f"the audit log {path} is missing but its anchor exists: {_RESTORE}", None)
    except OSError as exc:
        return bad(f"cannot read the audit log {path}: {exc.strerror or exc}", None)
    if before is None:
        handle.close()
        return bad(
            f"the head anchor {head_file} is missing: it was deleted, or the log was copied "
            f"without it; {_RESTORE}",
            None,
        )
    chain = _Chain(expected_head, before)
    previous: Anchor | None = None
    with handle:
        while True:
            read, problem = chain.read(handle)
            if problem is not None:
                return bad(problem, chain.entries + 1, chain)
            try:
                after = read_anchor(path)
                if after is not None and keks is not None:
                    after.key(keks)
                    authenticated = True
            except BadRecordError as exc:
                return bad(f"the head anchor does not verify: {exc}; {_RESTORE}", None, chain)
            if after is None:
                return bad(f"the head anchor {head_file} was removed; {_RESTORE}", None, chain)
            stalled = not read and after == previous  # neither the log nor the anchor moved
            if after.seq <= chain.entries + 1 or stalled:
                break  # it agrees with the anchor, or it will not catch up
            previous = after  # the service appended meanwhile: read on
    return _compare(chain, after, authenticated)


def _compare(chain: _Chain, anchor: Anchor, authenticated: bool) -> AuditVerification:
    """The verdict on a fully read chain and the anchor read after it."""

    def bad(problem: str, line: int | None) -> AuditVerification:
        return AuditVerification(False, chain.entries, chain.last, problem, line, authenticated)

    note = None
    if chain.torn:  # only the anchored record, cut short (or still being written), may be
        pending = anchor.record if anchor.seq == chain.entries + 1 else None
        if pending is None or not record_line(asdict(pending)).startswith(chain.torn):
            return bad("no line end: a torn or truncated write", chain.entries + 1)
    if anchor.seq > chain.entries + 1:
        return bad(
            f"the log ends after record {chain.entries} but its head anchor names record "
            f"{anchor.seq}: records were removed from its end (or it was emptied); {_RESTORE}",
            chain.entries + 1,
        )
    if anchor.seq < chain.entries:
        return bad(
            f"{chain.entries - anchor.seq} record(s) follow the head anchor (record "
            f"{anchor.seq}): appended behind the service's back (forged?) or the anchor was "
            f"rolled back; {_RESTORE}",
            anchor.seq + 1,
        )
    if anchor.seq == chain.entries and anchor.hash != chain.last:
        return bad("the head anchor does not match the last record: the log was rewritten", None)
    if anchor.seq == chain.entries + 1:
        if anchor.record is None or anchor.record.prev_hash != chain.last:
            return bad(
                "the head anchor's record does not extend the log: the log was rewritten",
                None,
            )
        chain.extend(anchor.hash)
        note = (
            f"record {anchor.seq} is held only in the head anchor (an append was "
            "interrupted); the service writes it to the log when it next opens it"
        )
    if not chain.found_expected:
        return bad(
            "the head hash you recorded is not in the log: records were removed or rewritten "
            f"since you recorded it; {_RESTORE}",
            None,
        )
    if not authenticated:
        note = "; ".join(n for n in (note, "the anchor's MAC was not checked (no KEK given)") if n)
    return AuditVerification(True, chain.entries, chain.last, None, None, authenticated, note)
