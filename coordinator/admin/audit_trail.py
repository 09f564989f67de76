"""The admin API's audit trail: append-only, hash-chained JSONL with a keyed head anchor.

Design: a hash chain (B. Schneier and J. Kelsey, "Secure audit logs to support computer
forensics", ACM TISSEC 2(2), 1999; the same design as the query gateway's audit log) in
a compact form: the records are in :mod:`coordinator.admin.trail_records`, the keyed
head anchor in :mod:`coordinator.admin.trail_anchor`, the verification in
:mod:`coordinator.admin.trail_verification`.

One append (the record is durable before the action is acknowledged): the anchor naming
the new record is replaced atomically, then the line is written and fsync'ed. A crash
between the two leaves the record only in the anchor; the next open completes the log
from the anchor's copy. Appends are serialised by a thread lock and, between the service
and the CLI, by ``flock`` on the log; an open checks the whole chain (the trail holds
one line per state change, a small file) and refuses to extend one it cannot vouch for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coordinator.admin.tokens import AdminToken
from coordinator.admin.trail_anchor import read_anchor, write_anchor
from coordinator.admin.trail_records import (
    GENESIS_HASH,
    RESTORE_HINT,
    BadRecordError,
    TrailError,
    canonical_json,
    check_detail_value,
    record_hash,
    record_line,
)
from coordinator.admin.trail_verification import (
    TrailVerification,
    read_chain,
    verify_trail,
    verify_unlocked,
)

__all__ = ["AdminAuditTrail"]

logger = logging.getLogger(__name__)


class AdminAuditTrail:
    """The admin API's audit trail (implements :class:`coordinator.admin.deps.Trail`).

    Args:
        path: The JSONL file; created with its seq-0 anchor if missing, else resumed.
        key: The anchor's MAC key (:func:`load_trail_key`).

    Raises:
        TrailError: When the trail does not verify against its anchor (it was edited,
            truncated or its anchor removed) or cannot be opened.
    """

    def __init__(self, path: Path, *, key: bytes) -> None:
        self.path = Path(path)
        self._key = key
        self._lock = threading.Lock()
        self._seq, self._hash, self._size = 0, GENESIS_HASH, 0
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise self._error(f"cannot be opened ({exc.strerror})") from exc
        try:
            with self._flocked():
                self._resume()
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record; (0, 64 zeros) for an empty trail."""
        with self._lock:
            return self._seq, self._hash

    def record(
        self,
        actor: AdminToken,
        action: str,
        target: str,
        *,
        decision: str = "ok",
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """Append one record, durable (anchor replaced, line fsync'ed) before it returns.

        Raises:
            ValueError: When a value looks like a text or a vector, or is not JSON.
            TrailError: When the trail cannot be written.
        """
        head = {"actor": actor.token_id, "actor_name": actor.name, "role": str(actor.role)}
        head |= {"action": action, "target": target, "decision": decision}
        check_detail_value(head, "record")
        check_detail_value(dict(detail or {}), "detail")
        plain: dict[str, Any] = json.loads(canonical_json(dict(detail or {})))
        with self._lock, self._flocked():
            if os.fstat(self._fd).st_size != self._size:  # the CLI appended meanwhile
                self._resume()
            fields: dict[str, Any] = {
                "seq": self._seq + 1,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                **head,
                "detail": plain,
                "prev_hash": self._hash,
            }
            fields["hash"] = record_hash(fields)
            try:
                write_anchor(self.path, self._key, fields["seq"], fields["hash"], fields)
            except OSError as exc:
                raise self._error(f"anchor cannot be written ({exc.strerror})") from exc
            self._append(record_line(fields))
            self._seq, self._hash = fields["seq"], fields["hash"]
        logger.debug("trail: seq %d %s %s", fields["seq"], action, decision)

    def verify(self, expected_head: str | None = None) -> TrailVerification:
        """:func:`verify_trail` of this trail (appends wait meanwhile)."""
        with self._lock:
            return verify_trail(self.path, self._key, expected_head=expected_head)

    def close(self) -> None:
        """Close the file (recording afterwards fails)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _error(self, problem: str) -> TrailError:
        return TrailError(
            f"the admin audit trail {self.path} {problem}",
            expected="an intact trail whose last record matches its keyed head anchor",
            fix=f"check it with `fedembed coordinator admin verify-trail`; {RESTORE_HINT}",
        )

    @contextlib.contextmanager
    def _flocked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _resume(self) -> None:
        """Load the head from the verified chain; complete an append a crash cut short."""
        size = os.fstat(self._fd).st_size
        try:
            anchor = read_anchor(self.path, self._key)
        except BadRecordError as exc:
            raise self._error(f"cannot be resumed: {exc}") from exc
        if anchor is None:
            if size:
                raise self._error("holds records but its head anchor is missing")
            write_anchor(self.path, self._key, 0, GENESIS_HASH, None)
            self._seq, self._hash, self._size = 0, GENESIS_HASH, 0
            return
        result = verify_unlocked(self.path, self._key, None)
        if not result.ok:
            raise self._error(f"does not verify (line {result.line}): {result.problem}")
        chain = read_chain(self.path)
        if chain.torn:  # the anchored record, cut short: complete it from the anchor
            os.ftruncate(self._fd, size - len(chain.torn))
            size -= len(chain.torn)
        self._size = size
        if anchor.seq == chain.entries + 1 and anchor.record is not None:
            logger.warning("trail: completing record %d from the head anchor", anchor.seq)
            self._append(record_line(anchor.record))
        self._seq, self._hash = result.entries, result.head_hash

    def _append(self, line: bytes) -> None:
        try:
            done = 0
            while done < len(line):
                done += os.write(self._fd, line[done:])
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # never leave a torn line behind
                os.ftruncate(self._fd, self._size)
            raise self._error(f"cannot be appended to ({exc.strerror})") from exc
        self._size += len(line)
