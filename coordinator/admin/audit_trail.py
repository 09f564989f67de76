"""The admin API's audit trail: append-only, hash-chained JSONL with a keyed head anchor.

Design: a hash chain (B. Schneier and J. Kelsey, "Secure audit logs to support computer
forensics", ACM TISSEC 2(2), 1999; the same design as the query gateway's audit log) in
a compact form. Each state change of the control plane is one line of
``<home>/admin/trail.jsonl``::

    {"action":"token.create","actor":"<token id>","actor_name":..,"decision":"ok",
     "detail":{..},"hash":..,"prev_hash":..,"role":"admin","seq":N,"target":..,"time":..}

``hash`` is SHA-256 of the canonical JSON (sorted keys, compact, UTF-8) of the record
without ``hash``; ``prev_hash`` is the previous record's hash (64 zeros before record 1);
record ``seq`` is on line ``seq``. The chain alone needs no key, so whoever can write the
file could cut or rewrite it and recompute every hash. The head anchor
``trail.jsonl.head`` stops that: it holds the head (``seq``, ``hash``), a copy of the head
record and an HMAC-SHA-256 (RFC 2104) of the head under the trail key (the 0600 file
``<home>/admin/trail.key``, created on first start, or ``FEDEMBED_ADMIN_TRAIL_KEY``).

One append (the record is durable before the action is acknowledged): the anchor naming
the new record is replaced atomically, then the line is written and fsync'ed. A crash
between the two leaves the record only in the anchor; the next open completes the log
from the anchor's copy. Appends are serialised by a thread lock and, between the service
and the CLI, by ``flock`` on the log; an open checks the whole chain (the trail holds
one line per state change, a small file) and refuses to extend one it cannot vouch for.

:func:`verify_trail` detects an edited record, a removed, reordered or inserted one, a
truncated tail, records appended behind the anchor and an anchor rewritten without the
key, and names the first bad line. Not detected by the anchor: a rewrite by someone who
holds the key, or a rollback of the log and its anchor to copies taken earlier; a head
hash recorded off the host (``verify-trail --expected-head``) catches both.

Records hold ids, counts, names and reasons: :meth:`AdminAuditTrail.record` refuses a
detail value that looks like a text (a string over :data:`MAX_DETAIL_TEXT` characters) or
a vector (a list of over :data:`MAX_DETAIL_VECTOR` numbers with a float among them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coordinator.admin.errors import AdminError
from coordinator.admin.tokens import AdminToken
from crypto.secret_files import read_secret_file, write_secret_file
from embedding_core.atomic_file import atomic_write_bytes

__all__ = [
    "GENESIS_HASH",
    "MAX_DETAIL_TEXT",
    "MAX_DETAIL_VECTOR",
    "TRAIL_FILE",
    "TRAIL_KEY_FILE",
    "AdminAuditTrail",
    "TrailError",
    "TrailVerification",
    "load_trail_key",
    "verify_trail",
]

logger = logging.getLogger(__name__)

TRAIL_FILE = "trail.jsonl"
TRAIL_KEY_FILE = "trail.key"
GENESIS_HASH = "0" * 64
MAX_DETAIL_TEXT = 256
MAX_DETAIL_VECTOR = 8
ANCHOR_FORMAT = "fedembed-admin-trail-anchor"
_MAC_LABEL = b"fedembed/admin-trail-anchor/v1"
_KEY_BYTES = 32
_MIN_ENV_KEY_CHARS = 32
_STR_FIELDS = ("time", "actor", "actor_name", "role", "action", "target", "decision")
_FIELDS = frozenset(("seq", "detail", "prev_hash", "hash", *_STR_FIELDS))
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RESTORE = "restore trail.jsonl and trail.jsonl.head together from a backup"


class TrailError(AdminError):
    """The trail cannot be opened, extended or its key read (the service's trouble)."""

    status = 503


class _BadRecordError(Exception):
    """A line or anchor that does not verify (internal)."""


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _line(fields: Mapping[str, Any]) -> bytes:
    """A record as stored: canonical, non-ASCII escaped (no Unicode line breaks), newline."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii") + b"\n"


def _hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in fields.items() if k != "hash"})).hexdigest()


def _check_value(value: Any, where: str) -> None:
    """Refuse what looks like a text or a vector, and what JSON cannot hold."""
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_TEXT:
            raise ValueError(f"trail: {where} is a text of {len(value)} characters: never logged")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"trail: {where} has a non-string key")
            _check_value(key, f"{where} key")
            _check_value(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if len(value) > MAX_DETAIL_VECTOR and numbers and any(isinstance(v, float) for v in value):
            raise ValueError(f"trail: {where} is a list of {len(value)} numbers: never logged")
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]")
    elif value is not None and not isinstance(value, bool | int | float):
        raise ValueError(f"trail: {where} has type {type(value).__name__}, which is not JSON")


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _BadRecordError(f"not a JSON record ({exc})") from exc
    if not isinstance(fields, dict) or set(fields) != _FIELDS:
        raise _BadRecordError("not a trail record (wrong fields)")
    seq = fields["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise _BadRecordError(f"seq {seq!r} is not a positive integer")
    if not all(isinstance(fields[k], str) for k in _STR_FIELDS) or not isinstance(
        fields["detail"], dict
    ):
        raise _BadRecordError("a field that must be a string is not")
    if not (_HEX64.fullmatch(fields["hash"]) and _HEX64.fullmatch(fields["prev_hash"])):
        raise _BadRecordError("hash or prev_hash is not 64 lowercase hex digits")
    if _hash(fields) != fields["hash"]:
        raise _BadRecordError("the hash does not match the record's content: the record was edited")
    return fields


def load_trail_key(state: Path, env_value: str | None, *, create: bool) -> bytes:
    """The trail key: ``env_value`` (FEDEMBED_ADMIN_TRAIL_KEY) or the 0600 ``trail.key``.

    Args:
        state: The admin API's state folder (``<home>/admin``).
        env_value: The key from the environment, if set (at least 32 characters).
        create: Make a random key file when there is none (the service's first start).

    Raises:
        TrailError: When the key is too short, the file is not owner-only, or missing
            and ``create`` is False.
    """
    if env_value is not None:
        if len(env_value) < _MIN_ENV_KEY_CHARS:
            raise TrailError(
                f"FEDEMBED_ADMIN_TRAIL_KEY has {len(env_value)} characters",
                expected=f"at least {_MIN_ENV_KEY_CHARS} random characters",
                fix="set it to the output of `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`, or unset it to use admin/trail.key",
            )
        material = env_value.encode("utf-8")
    else:
        path = state / TRAIL_KEY_FILE
        try:
            material = read_secret_file(path, what="audit trail key")
        except FileNotFoundError:
            if not create:
                raise TrailError(
                    f"there is no audit trail key at {path}",
                    expected="the key the admin API created on its first start, or "
                    "FEDEMBED_ADMIN_TRAIL_KEY",
                    fix="point --home at the consortium home the admin API runs with",
                ) from None
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_secret_file(path, secrets.token_hex(_KEY_BYTES).encode("ascii"))
            logger.info("trail: created the anchor key %s", path)
            material = read_secret_file(path, what="audit trail key")
        except AdminError:
            raise
        except Exception as exc:  # SecretFileError (mode, owner), OSError
            raise TrailError(
                f"the audit trail key {path} cannot be read: {getattr(exc, 'problem', exc)}",
                expected="an owner-only (0600) key file",
                fix=getattr(exc, "fix", "") or f"chmod 600 {path}",
            ) from exc
    return hmac.new(material, _MAC_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class _Anchor:
    seq: int
    hash: str
    record: dict[str, Any] | None


def _anchor_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _mac(key: bytes, seq: int, head: str) -> str:
    message = _canonical({"format": ANCHOR_FORMAT, "seq": seq, "hash": head})
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _read_anchor(path: Path, key: bytes) -> _Anchor | None:
    """The anchor of the trail at ``path``, its MAC checked; None when missing."""
    try:
        doc = json.loads(_anchor_path(path).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise _BadRecordError(f"the head anchor cannot be read ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != ANCHOR_FORMAT:
        raise _BadRecordError("the head anchor is not a trail anchor")
    seq, head, record, mac = doc.get("seq"), doc.get("hash"), doc.get("record"), doc.get("mac")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise _BadRecordError("the head anchor has an invalid seq")
    if not (isinstance(head, str) and isinstance(mac, str)):
        raise _BadRecordError("the head anchor has no hash or MAC")
    if not hmac.compare_digest(_mac(key, seq, head), mac):
        raise _BadRecordError(
            "the head anchor's MAC does not verify: it was rewritten without the key"
        )
    if seq == 0:
        if head != GENESIS_HASH or record is not None:
            raise _BadRecordError("the head anchor at seq 0 must name the genesis")
        return _Anchor(0, head, None)
    checked = _parse(_line(record)) if isinstance(record, dict) else None
    if checked is None or (checked["seq"], checked["hash"]) != (seq, head):
        raise _BadRecordError("the head anchor's record copy is not its head")
    return _Anchor(seq, head, checked)


def _write_anchor(path: Path, key: bytes, seq: int, head: str, record: Any) -> None:
    doc = {"format": ANCHOR_FORMAT, "seq": seq, "hash": head, "record": record}
    doc["mac"] = _mac(key, seq, head)
    atomic_write_bytes(_anchor_path(path), _line(doc))


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
class _Chain:
    entries: int = 0
    last: str = GENESIS_HASH
    torn: bytes = b""
    problem: str | None = None


def _read_chain(path: Path, found: set[str] | None = None) -> _Chain:
    """Every complete line of the trail checked: hash, seq and link; stops at the first bad."""
    chain = _Chain()
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                chain.torn = raw
                break
            try:
                fields = _parse(raw[:-1])
            except _BadRecordError as exc:
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
        key: The anchor key (:func:`load_trail_key`).
        expected_head: A head hash recorded earlier off the host; it must still be in
            the chain (detects a rollback or a rewrite by someone holding the key).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return _verify(path, key, expected_head)
    except OSError as exc:
        return TrailVerification(False, 0, GENESIS_HASH, f"cannot open {path}: {exc.strerror}")
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return _verify(path, key, expected_head)
    finally:
        os.close(fd)


def _verify(path: Path, key: bytes, expected_head: str | None) -> TrailVerification:
    """:func:`verify_trail` without the lock (the caller holds it)."""

    def bad(problem: str, line: int | None, chain: _Chain | None = None) -> TrailVerification:
        chain = chain or _Chain()
        return TrailVerification(False, chain.entries, chain.last, problem, line)

    if expected_head is not None and not _HEX64.fullmatch(expected_head):
        return bad("the expected head is not a SHA-256 hash (64 lowercase hex digits)", None)
    try:
        anchor = _read_anchor(path, key)
    except _BadRecordError as exc:
        return bad(f"{exc}; {_RESTORE}", None)
    found: set[str] = {GENESIS_HASH}
    try:
        chain = _read_chain(path, found)
    except FileNotFoundError:
        return bad(f"there is no audit trail at {path}; {_RESTORE}", None)
    if anchor is None:
        return bad(f"the head anchor of {path} is missing; {_RESTORE}", None, chain)
    if chain.problem is not None:
        return bad(chain.problem, chain.entries + 1, chain)
    note = None
    pending = anchor.seq == chain.entries + 1 and anchor.record is not None
    if chain.torn and not (pending and _line(anchor.record or {}).startswith(chain.torn)):
        return bad("no line end: a torn or truncated record", chain.entries + 1, chain)
    if anchor.seq > chain.entries + 1 or (anchor.seq == chain.entries + 1 and not pending):
        return bad(
            f"the trail ends after record {chain.entries} but its head anchor names record "
            f"{anchor.seq}: records were removed from its end; {_RESTORE}",
            chain.entries + 1,
            chain,
        )
    if anchor.seq < chain.entries:
        return bad(
            f"{chain.entries - anchor.seq} record(s) follow the head anchor (record "
            f"{anchor.seq}): appended behind the service's back; {_RESTORE}",
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
            f"rewritten since; {_RESTORE}",
            None,
            chain,
        )
    return TrailVerification(True, chain.entries, chain.last, note=note)


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
        _check_value(head, "record")
        _check_value(dict(detail or {}), "detail")
        plain: dict[str, Any] = json.loads(_canonical(dict(detail or {})))
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
            fields["hash"] = _hash(fields)
            try:
                _write_anchor(self.path, self._key, fields["seq"], fields["hash"], fields)
            except OSError as exc:
                raise self._error(f"anchor cannot be written ({exc.strerror})") from exc
            self._append(_line(fields))
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
            fix=f"check it with `fedembed coordinator admin verify-trail`; {_RESTORE}",
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
            anchor = _read_anchor(self.path, self._key)
        except _BadRecordError as exc:
            raise self._error(f"cannot be resumed: {exc}") from exc
        if anchor is None:
            if size:
                raise self._error("holds records but its head anchor is missing")
            _write_anchor(self.path, self._key, 0, GENESIS_HASH, None)
            self._seq, self._hash, self._size = 0, GENESIS_HASH, 0
            return
        result = _verify(self.path, self._key, None)
        if not result.ok:
            raise self._error(f"does not verify (line {result.line}): {result.problem}")
        chain = _read_chain(self.path)
        if chain.torn:  # the anchored record, cut short: complete it from the anchor
            os.ftruncate(self._fd, size - len(chain.torn))
            size -= len(chain.torn)
        self._size = size
        if anchor.seq == chain.entries + 1 and anchor.record is not None:
            logger.warning("trail: completing record %d from the head anchor", anchor.seq)
            self._append(_line(anchor.record))
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
