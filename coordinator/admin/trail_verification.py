"""Verification of the admin audit trail: the whole chain against its keyed head anchor.

:func:`verify_trail` detects an edited record, a removed, reordered or inserted one, a
truncated tail, records appended behind the anchor and an anchor rewritten without the
key, and names the first bad line. Not detected by the anchor: a rewrite by someone who
holds the key, or a rollback of the log and its anchor to copies taken earlier; a head
hash recorded off the host (``verify-trail --expected-head``) catches both.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from coordinator.admin.trail_anchor import read_anchor
from coordinator.admin.trail_records import (
    GENESIS_HASH,
    HEX64,
    RESTORE_HINT,
    BadRecordError,
    parse_record,
    record_line,
)

__all__ = ["TrailChain", "TrailVerification", "read_chain", "verify_trail", "verify_unlocked"]


@dataclass(frozen=True)
class TrailVerification:
    """Outcome of :func:`verify_trail`: ``ok``, records, head hash, else problem and line."""

    ok: bool
    entries: int
    head_hash: str
    problem: str | None = None
    line: int | None = None
    note: str | None = None


@dataclass
class TrailChain:
    """What :func:`read_chain` found: records, last hash, a torn tail, the first problem."""

    entries: int = 0
    last: str = GENESIS_HASH
    torn: bytes = b""
    problem: str | None = None


def read_chain(path: Path, found: set[str] | None = None) -> TrailChain:
    """Every complete line of the trail checked: hash, seq and link; stops at the first bad.

    Args:
        path: The trail.
        found: Filled with every hash of the chain, when given.
    """
    chain = TrailChain()
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                chain.torn = raw
                break
            try:
                fields = parse_record(raw[:-1])
            except BadRecordError as exc:
                chain.problem = str(exc)
                break
            if fields["seq"] != chain.entries + 1:
                chain.problem = f"seq {fields['seq']} on line {chain.entries + 1}: a record "
                chain.problem += "was removed, reordered or inserted before it"
                break
            if fields["prev_hash"] != chain.last:
                chain.problem = "prev_hash is not the previous record's hash: a record was "
                chain.problem += "removed, reordered or inserted before it"
                break
            chain.entries, chain.last = chain.entries + 1, fields["hash"]
            if found is not None:
                found.add(chain.last)
    return chain


def verify_trail(path: Path, key: bytes, *, expected_head: str | None = None) -> TrailVerification:
    """Check the whole chain of the trail at ``path``, its keyed anchor and a recorded head.

    Holds a shared ``flock`` on the log while it reads, so an append of the running
    service (anchor, then line) is never seen half done.

    Args:
        path: The trail (``<home>/admin/trail.jsonl``).
        key: The anchor key (:func:`coordinator.admin.trail_anchor.load_trail_key`).
        expected_head: A head hash recorded earlier off the host; it must still be in
            the chain (detects a rollback or a rewrite by someone holding the key).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return verify_unlocked(path, key, expected_head)
    except OSError as exc:
        return TrailVerification(False, 0, GENESIS_HASH, f"cannot open {path}: {exc.strerror}")
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return verify_unlocked(path, key, expected_head)
    finally:
        os.close(fd)


def verify_unlocked(path: Path, key: bytes, expected_head: str | None) -> TrailVerification:
    """:func:`verify_trail` without the lock (the caller holds it)."""

    def bad(problem: str, line: int | None, chain: TrailChain | None = None) -> TrailVerification:
        chain = chain or TrailChain()
        return TrailVerification(False, chain.entries, chain.last, problem, line)

    if expected_head is not None and not HEX64.fullmatch(expected_head):
        return bad("the expected head is not a SHA-256 hash (64 lowercase hex digits)", None)
    try:
        anchor = read_anchor(path, key)
    except BadRecordError as exc:
        return bad(f"{exc}; {RESTORE_HINT}", None)
    found: set[str] = {GENESIS_HASH}
    try:
        chain = read_chain(path, found)
    except FileNotFoundError:
        return bad(f"there is no audit trail at {path}; {RESTORE_HINT}", None)
    if anchor is None:
        return bad(f"the head anchor of {path} is missing; {RESTORE_HINT}", None, chain)
    if chain.problem is not None:
        return bad(chain.problem, chain.entries + 1, chain)
    note = None
    pending = anchor.seq == chain.entries + 1 and anchor.record is not None
    if chain.torn and not (pending and record_line(anchor.record or {}).startswith(chain.torn)):
        return bad("no line end: a torn or truncated record", chain.entries + 1, chain)
    if anchor.seq > chain.entries + 1 or (anchor.seq == chain.entries + 1 and not pending):
        return bad(
            f"the trail ends after record {chain.entries} but its head anchor names record "
            f"{anchor.seq}: records were removed from its end; {RESTORE_HINT}",
            chain.entries + 1,
            chain,
        )
    if anchor.seq < chain.entries:
        return bad(
            f"{chain.entries - anchor.seq} record(s) follow the head anchor (record "
            f"{anchor.seq}): appended behind the service's back; {RESTORE_HINT}",
            anchor.seq + 1,
            chain,
        )
    if anchor.seq == chain.entries and anchor.hash != chain.last:
        return bad("the head anchor does not match the last record: rewritten", None, chain)
    if pending:
        assert anchor.record is not None
        if anchor.record["prev_hash"] != chain.last:
            return bad("the head anchor's record does not extend the trail", None, chain)
        chain.entries, chain.last = anchor.seq, anchor.hash
        found.add(anchor.hash)
        note = f"record {anchor.seq} is held only in the head anchor (an interrupted append)"
    if expected_head is not None and expected_head not in found:
        return bad(
            f"the head hash you recorded is not in the trail: records were removed or "
            f"rewritten since; {RESTORE_HINT}",
            None,
            chain,
        )
    return TrailVerification(True, chain.entries, chain.last, note=note)
