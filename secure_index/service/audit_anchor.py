"""The keyed head anchor of the audit log: a MAC'd copy of its newest record.

The hash chain of :mod:`secure_index.service.audit_log` needs no key, so whoever can
write the log could cut its tail, or rewrite it, and write a matching head. The anchor
``<log>.head`` stops that for anyone without the key-encryption key (KEK): it holds the
chain's head (``seq``, ``hash``), a copy of the head record and an HMAC-SHA-256 (RFC 2104)
over them. The MAC key is HKDF-SHA-256 (RFC 5869, info :data:`MAC_LABEL`) of a random
32-byte secret kept in the anchor wrapped by the KEK (envelope encryption, as every data
key of the store: AES-256-GCM with the associated data :data:`KEY_WRAP_LABEL`, so a
wrapped key of another purpose does not unwrap here), and the anchor names the KEK
version that wrapped it. Wrapping a random secret rather than deriving one from KEK bytes
keeps the anchor working with any :class:`~secure_index.sealing.KekProvider`, a KMS
included, which never hands out its key bytes. The MAC input is :data:`MAC_LABEL`
followed by the canonical JSON of ``format``, ``version``, ``seq``, ``hash``, ``kek_id``
and ``wrapped_key``; the record copy is bound by its own chain hash.

File format (one JSON object, mode 0600, replaced atomically)::

    {"format": "fedembed-audit-anchor", "version": 2, "seq": N, "hash": "<64 hex>",
     "record": {...the record of seq N, or null for N = 0...},
     "kek_id": "kek-1", "wrapped_key": "<base64>", "mac": "<64 hex>"}

KEK rotation re-wraps the anchor's MAC key under the new primary version
(:func:`rewrap_anchor`, called by ``fedembed index keys rotate`` and ``keys rewrap``),
only after its MAC verified under the KEKs it names, so a forged anchor is never
re-MAC'd into a genuine one; ``keys retire`` counts the anchor among the files that
still use a version.

What the anchor does not stop: an attacker who holds the KEK (or who can make the
service append) and can write the files; and putting back an older anchor together with
the log as it was then (a rollback to a state the attacker copied). Only a head hash
recorded off the host (``fedembed index verify-audit --expected-head``) detects those.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.errors import KeyManagementError
from secure_index.atomic_file import atomic_write, storage_error
from secure_index.sealing import DecryptionError, KekProvider, WrappedKey
from secure_index.service.audit_record import (
    GENESIS_HASH,
    SHA256_HEX,
    AuditRecord,
    BadRecordError,
    canonical_json,
    parse_record,
)

__all__ = [
    "ANCHOR_FORMAT",
    "ANCHOR_VERSION",
    "HEAD_SUFFIX",
    "KEY_WRAP_LABEL",
    "MAC_LABEL",
    "Anchor",
    "AnchorKey",
    "anchor_path",
    "encode_anchor",
    "read_anchor",
    "rewrap_anchor",
]

logger = logging.getLogger(__name__)

HEAD_SUFFIX = ".head"
ANCHOR_FORMAT = "fedembed-audit-anchor"
ANCHOR_VERSION = 2
KEY_WRAP_LABEL = b"fedembed/audit-anchor-key/v1"
MAC_LABEL = b"fedembed/audit-anchor-mac/v1"
MAC_KEY_BYTES = 32
_FIELDS = frozenset(("format", "version", "seq", "hash", "record", "kek_id", "wrapped_key", "mac"))


def anchor_path(path: Path) -> Path:
    """The head anchor file of the log at ``path`` (``<path>.head``)."""
    return path.with_name(path.name + HEAD_SUFFIX)


@dataclass(frozen=True)
class AnchorKey:
    """The anchor's MAC key (in memory only) and its KEK-wrapped form (in the anchor)."""

    secret: bytes = field(repr=False)
    wrapped: WrappedKey = field(repr=False)
    mac_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=MAC_KEY_BYTES, salt=None, info=MAC_LABEL)
        object.__setattr__(self, "mac_key", hkdf.derive(self.secret))

    @classmethod
    def create(cls, keks: KekProvider) -> AnchorKey:
        """A fresh MAC key wrapped under the primary KEK."""
        secret = secrets.token_bytes(MAC_KEY_BYTES)
        return cls(secret, keks.wrap(secret, associated_data=KEY_WRAP_LABEL))

    @classmethod
    def unwrap(cls, keks: KekProvider, wrapped: WrappedKey) -> AnchorKey:
        """The MAC key of an anchor.

        Raises:
            BadRecordError: When the KEKs do not hold its KEK version or it does not unwrap.
        """
        try:
            secret = keks.unwrap(wrapped, associated_data=KEY_WRAP_LABEL)
        except KeyManagementError as exc:
            raise BadRecordError(
                f"its MAC key is wrapped under KEK version {wrapped.kek_id!r}, which the "
                f"given KEKs do not hold ({exc.problem})"
            ) from exc
        except DecryptionError as exc:
            raise BadRecordError(
                f"its MAC key does not unwrap under KEK version {wrapped.kek_id!r}: a "
                "different KEK, or a forged anchor"
            ) from exc
        if len(secret) != MAC_KEY_BYTES:
            raise BadRecordError("its MAC key has the wrong length")
        return cls(secret, wrapped)

    def under_primary(self, keks: KekProvider) -> AnchorKey:
        """The same key, re-wrapped under the primary KEK if another version wrapped it."""
        if self.wrapped.kek_id == keks.primary_id:
            return self
        return AnchorKey(self.secret, keks.wrap(self.secret, associated_data=KEY_WRAP_LABEL))

    def mac(self, seq: int, head: str) -> str:
        """HMAC-SHA-256 (hex) of the anchor's authenticated fields."""
        message = _mac_input(seq, head, self.wrapped)
        return hmac.new(self.mac_key, message, hashlib.sha256).hexdigest()


def _mac_input(seq: int, head: str, wrapped: WrappedKey) -> bytes:
    fields = {
        "format": ANCHOR_FORMAT,
        "version": ANCHOR_VERSION,
        "seq": seq,
        "hash": head,
        "kek_id": wrapped.kek_id,
        "wrapped_key": base64.b64encode(wrapped.blob).decode("ascii"),
    }
    return MAC_LABEL + canonical_json(fields)


@dataclass(frozen=True)
class Anchor:
    """A parsed head anchor (its MAC not yet checked: :meth:`key`)."""

    seq: int
    hash: str
    record: AuditRecord | None
    wrapped: WrappedKey = field(repr=False)
    mac: str = field(repr=False)

    def key(self, keks: KekProvider) -> AnchorKey:
        """The anchor's MAC key, once its MAC verifies under ``keks``.

        Raises:
            BadRecordError: When the key does not unwrap or the MAC does not match.
        """
        key = AnchorKey.unwrap(keks, self.wrapped)
        if not hmac.compare_digest(key.mac(self.seq, self.hash), self.mac):
            raise BadRecordError(
                "its MAC does not verify: it was rewritten by someone without the KEK"
            )
        return key


def encode_anchor(key: AnchorKey, seq: int, head: str, record: dict[str, Any] | None) -> bytes:
    """The anchor file's bytes for the head (``seq``, ``head``) and its record."""
    document = {
        "format": ANCHOR_FORMAT,
        "version": ANCHOR_VERSION,
        "seq": seq,
        "hash": head,
        "record": record,
        "kek_id": key.wrapped.kek_id,
        "wrapped_key": base64.b64encode(key.wrapped.blob).decode("ascii"),
        "mac": key.mac(seq, head),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")


def read_anchor(path: Path) -> Anchor | None:
    """The anchor of the log at ``path`` (MAC unchecked); None when the file is missing.

    Raises:
        BadRecordError: When it is malformed, has no MAC (an unkeyed anchor) or its
            record copy does not match its head.
    """
    where = anchor_path(path)
    try:
        raw = where.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadRecordError(f"the head anchor {where} cannot be read ({exc.strerror})") from exc
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRecordError(f"the head anchor {where} is not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != ANCHOR_FORMAT or "mac" not in doc:
        raise BadRecordError(
            f"the head anchor {where} has no MAC (an unkeyed anchor, or not an anchor)"
        )
    if set(doc) != _FIELDS or doc["version"] != ANCHOR_VERSION:
        raise BadRecordError(f"the head anchor {where} has the wrong fields or version")
    seq, head, kek_id, mac = doc["seq"], doc["hash"], doc["kek_id"], doc["mac"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise BadRecordError(f"the head anchor {where} has an invalid seq {seq!r}")
    if not (isinstance(head, str) and SHA256_HEX.fullmatch(head)):
        raise BadRecordError(f"the head anchor {where} has an invalid hash")
    if not (isinstance(mac, str) and SHA256_HEX.fullmatch(mac) and isinstance(kek_id, str)):
        raise BadRecordError(f"the head anchor {where} has an invalid MAC or KEK id")
    try:
        blob = base64.b64decode(str(doc["wrapped_key"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRecordError(f"the head anchor {where} has an invalid wrapped key") from exc
    record = _record(where, seq, head, doc["record"])
    return Anchor(seq, head, record, WrappedKey(kek_id=kek_id, blob=blob), mac)


def _record(where: Path, seq: int, head: str, fields: object) -> AuditRecord | None:
    if seq == 0:
        if fields is not None or head != GENESIS_HASH:
            raise BadRecordError(f"the head anchor {where} at seq 0 must name the genesis")
        return None
    if not isinstance(fields, dict):
        raise BadRecordError(f"the head anchor {where} holds no copy of record {seq}")
    record = parse_record(canonical_json(fields))  # BadRecordError when edited
    if (record.seq, record.hash) != (seq, head):
        raise BadRecordError(f"the head anchor {where} holds a record other than its head")
    return record


@contextlib.contextmanager
def _log_locked(path: Path) -> Iterator[None]:
    """The log's ``flock``, which every append holds (no lock when there is no log)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        yield
        return
    except OSError as exc:
        raise storage_error(exc, path=path, operation="open the audit log") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def rewrap_anchor(path: Path, *, keks: KekProvider) -> bool:
    """Re-wrap the anchor of the log at ``path`` under ``keks.primary_id``; whether it changed.

    The anchor's MAC is checked under ``keks`` first, so only an authentic anchor gets a
    MAC under the new key (a forged one is refused, not laundered); its head and record
    copy stay as they are. Runs under the log's ``flock``, so a concurrent append (a CLI
    key operation) waits and then extends the re-wrapped anchor. No anchor: nothing to do.

    Raises:
        KeyManagementError: When the anchor is malformed, names a KEK version ``keks``
            does not hold, or does not verify.
        StorageError: When it cannot be replaced.
    """
    path = Path(path)
    with _log_locked(path):
        try:
            anchor = read_anchor(path)
            if anchor is None or anchor.wrapped.kek_id == keks.primary_id:
                return False
            key = anchor.key(keks)
        except BadRecordError as exc:
            raise KeyManagementError(
                f"the audit log's head anchor {anchor_path(path)} cannot be re-wrapped: {exc}",
                expected="an anchor that verifies under a KEK version in the key file",
                fix="check it with `fedembed index verify-audit`; restore the log and its "
                ".head anchor together from a backup if it was tampered with, then run "
                "`fedembed index keys rewrap`",
            ) from None
        record = asdict(anchor.record) if anchor.record is not None else None
        fresh = key.under_primary(keks)
        atomic_write(anchor_path(path), [encode_anchor(fresh, anchor.seq, anchor.hash, record)])
    logger.info("audit: head anchor of %s re-wrapped under %s", path, keks.primary_id)
    return True
