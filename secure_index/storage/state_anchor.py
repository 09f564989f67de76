"""The state anchor: a keyed, monotonic record of each collection's newest committed state.

The index store may run on a host that deletes or rolls back files. Every sealed file
authenticates itself, but a folder restored from an older backup, a deleted manifest or a
log cut at a record boundary is made of authentic files: only a record of what was
committed, kept *outside* the data folder, shows that something is missing (the
"freshness" half of storage integrity, as in the monotonic counters of Sarmenta et al.,
"Virtual Monotonic Counters and Count-Limited Objects using a TPM without a Trusted OS",
STC 2006, and the anchored roots of SUNDR and CloudProof).

The anchor holds, per collection, its kind, newest snapshot generation, last durable log
sequence (HNSW collections) and CKKS manifest generation and digest, under an
HMAC-SHA-256 tag. The MAC key is HKDF-SHA-256 (RFC 5869, info
``fedembed/state-anchor/mac/v1``) of a random anchor key that the KEK wraps (AD: the
domain label and the tenant), so the anchor works with any :class:`KekProvider`, a KMS
included, and follows KEK rotation (re-wrapped under the primary KEK on open and rewrap).
Whoever lacks the KEK cannot forge an anchor that claims less.

It is updated *before* a write is acknowledged: after each group commit of a log
(:meth:`StateAnchor.advance`, itself group-committed: concurrent updates share one
``fdatasync``), after each snapshot and after each CKKS manifest. It never claims more
than is durable, because it is written only after the data it describes was synced.

File format: two slots of equal size, written alternately in place (one ``pwrite`` and
one ``fdatasync``), each ``MAGIC || length (u32) || JSON || HMAC (32)``, zero padded; the
valid slot with the higher counter wins, so a torn write falls back to the previous,
smaller claim. When the JSON outgrows a slot the file is rewritten atomically with
larger slots.
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
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.errors import KeyManagementError
from secure_index.atomic_file import FILE_MODE, atomic_write, storage_error
from secure_index.errors import StateAnchorError
from secure_index.sealing.aead import DecryptionError
from secure_index.sealing.key_encryption_keys import KekProvider, WrappedKey

__all__ = [
    "ANCHOR_SUFFIX",
    "AnchoredState",
    "StateAnchor",
    "default_anchor_path",
    "resolve_anchor_path",
]

logger = logging.getLogger(__name__)

ANCHOR_SUFFIX = ".state-anchor"
MAGIC = b"FEDANCH1"
KEY_DOMAIN = b"fedembed/state-anchor/key/v1"
MAC_INFO = b"fedembed/state-anchor/mac/v1"
FORMAT = "fedembed-state-anchor"
VERSION = 1
MIN_SLOT = 4096
_LEN = 4
_MAC = 32
_KEY_BYTES = 32
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def default_anchor_path(key_file: Path, store_root: Path) -> Path:
    """Beside the KEK file, one anchor per store folder: ``<key file>.<id>.state-anchor``."""
    ident = hashlib.sha256(str(Path(store_root).resolve()).encode()).hexdigest()[:12]
    key_file = Path(key_file)
    return key_file.with_name(f"{key_file.name}.{ident}{ANCHOR_SUFFIX}")


def resolve_anchor_path(
    state_anchor: Path | None, *, key_file: Path | None, store_root: Path
) -> Path | None:
    """Where the store's anchor lives: the chosen path, else beside the KEK file.

    With the KEK in ``FEDEMBED_INDEX_KEK`` (no key file) and no chosen path there is no
    anchor: a warning says that a rollback of the whole folder, a cut log or a rolled-back
    CKKS manifest is then not detected (a log gap and a deleted or foreign block still are).
    """
    if state_anchor is not None:
        return Path(state_anchor)
    if key_file is not None:
        return default_anchor_path(key_file, store_root)
    logger.warning(
        "state anchor: none (the KEK comes from the environment and "
        "FEDEMBED_INDEX_STATE_ANCHOR is not set): a rollback of the whole data folder "
        "would not be detected"
    )
    return None


@dataclass(frozen=True)
class AnchoredState:
    """What the anchor knows of one collection (``kind``: ``hnsw`` or ``ckks``)."""

    kind: str
    generation: int
    seq: int = 0
    digest: str = ""

    def covers(self, other: AnchoredState) -> bool:
        """Whether this state is at least as new as ``other`` (nothing of it is missing)."""
        if self.generation != other.generation:
            return self.generation > other.generation and self.seq >= other.seq
        return self.seq >= other.seq and (not other.digest or self.digest == other.digest)


def _damaged(path: Path, what: str) -> StateAnchorError:
    return StateAnchorError(
        f"the state anchor {path} {what}",
        expected="the anchor file this store wrote, readable with the store's KEK",
        fix="restore the anchor from its backup (it is not secret), or start with "
        "FEDEMBED_INDEX_STATE_ANCHOR pointing at the right file; deleting it re-anchors at "
        "whatever the data folder holds (a rollback before that is then not detected)",
    )


class StateAnchor:
    """The anchor file of one store (use :meth:`open`); thread-safe, group-committed."""

    def __init__(
        self, path: Path, tenant: str, key: bytes, wrapped: WrappedKey, keks: KekProvider
    ) -> None:
        self.path = path
        self._keks = keks
        self._ad = KEY_DOMAIN + b"|" + tenant.encode()
        self._tenant = tenant
        self._mac_key = HKDF(
            algorithm=hashes.SHA256(), length=_MAC, salt=None, info=MAC_INFO
        ).derive(key)
        self._wrapped = wrapped
        self._entries: dict[str, AnchoredState] = {}
        self._counter = 0
        self._slot = MIN_SLOT
        self._fd = -1
        self._cond = threading.Condition()
        self._changes = 0  # bumped on every change in memory
        self._written = 0  # the change count that is durable
        self._writing = False
        self.existed = False

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, keks: KekProvider, tenant: str) -> StateAnchor:
        """Load the anchor at ``path``, or create an empty one (``existed`` says which).

        Raises:
            StateAnchorError: When the file is damaged, forged, of another tenant, or in
                use by another store process.
            KeyManagementError: When its KEK is unknown or retired.
            StorageError: When it cannot be read or written.
        """
        path = Path(path)
        try:
            raw = path.read_bytes() if path.exists() else b""
        except OSError as exc:
            raise storage_error(exc, path=path, operation="read the state anchor") from exc
        ad = KEY_DOMAIN + b"|" + tenant.encode()
        if raw:
            anchor = cls._load(path, raw, keks=keks, tenant=tenant, ad=ad)
        else:
            key = secrets.token_bytes(_KEY_BYTES)
            anchor = cls(path, tenant, key, keks.wrap(key, associated_data=ad), keks)
        anchor._open_fd(create=not raw)
        anchor.rewrap()  # follow KEK rotation
        logger.info(
            "state anchor: %s %s (%d collection(s))",
            "opened" if raw else "created",
            path,
            len(anchor._entries),
        )
        return anchor

    @classmethod
    def _load(
        cls, path: Path, raw: bytes, *, keks: KekProvider, tenant: str, ad: bytes
    ) -> StateAnchor:
        if len(raw) % 2 or len(raw) < 2 * MIN_SLOT:
            raise _damaged(path, "has the wrong size (it was cut or is not an anchor)")
        size = len(raw) // 2
        best: tuple[int, dict[str, Any], bytes] | None = None
        key_error: KeyManagementError | None = None
        for index in range(2):
            slot = raw[index * size : (index + 1) * size]
            parsed = _parse_slot(slot)
            if parsed is None:
                continue
            document, signed, tag = parsed
            try:
                wrapped = WrappedKey(
                    str(document["key"]["kek_id"]),
                    base64.b64decode(document["key"]["blob"], validate=True),
                )
                key = keks.unwrap(wrapped, associated_data=ad)
            except (KeyError, TypeError, binascii.Error, DecryptionError):
                continue
            except KeyManagementError as exc:  # e.g. the older slot under a retired KEK
                key_error = exc
                continue
            mac_key = HKDF(algorithm=hashes.SHA256(), length=_MAC, salt=None, info=MAC_INFO)
            if not hmac.compare_digest(hmac.digest(mac_key.derive(key), signed, "sha256"), tag):
                continue
            counter = int(document.get("counter", -1))
            if best is None or counter > best[0]:
                best = (counter, document, key)
        if best is None and key_error is not None:
            raise KeyManagementError(
                f"state anchor {path}: {key_error.problem}",
                expected=key_error.expected,
                fix=key_error.fix,
            )
        if best is None:
            raise _damaged(
                path, "does not authenticate (modified, forged, another tenant or another KEK)"
            )
        counter, document, key = best
        if document.get("format") != FORMAT or document.get("version") != VERSION:
            raise _damaged(path, "has an unsupported format")
        if document.get("tenant") != tenant:
            raise _damaged(path, f"belongs to tenant {document.get('tenant')!r}, not {tenant!r}")
        key_doc = document["key"]
        wrapped = WrappedKey(str(key_doc["kek_id"]), base64.b64decode(key_doc["blob"]))
        anchor = cls(path, tenant, key, wrapped, keks)
        anchor._counter, anchor._slot, anchor.existed = counter, size, True
        anchor._entries = {
            str(name): AnchoredState(**entry) for name, entry in document["collections"].items()
        }
        return anchor

    def _open_fd(self, *, create: bool) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if create:  # both slots hold the first (empty) state from the start
                self._counter += 1
                first = self._encode().ljust(self._slot, b"\0")
                atomic_write(self.path, [first, first], mode=FILE_MODE)
            fd = os.open(self.path, os.O_RDWR | _O_CLOEXEC)
        except OSError as exc:
            raise storage_error(exc, path=self.path, operation="open the state anchor") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateAnchorError(
                f"the state anchor {self.path} is in use by another index process",
                expected="one state anchor per index data folder",
                fix="set FEDEMBED_INDEX_STATE_ANCHOR (or --state-anchor) to a path of its own "
                "for each data folder",
            ) from None
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd

    # -- reading ---------------------------------------------------------------------------

    def get(self, name: str) -> AnchoredState | None:
        """The anchored state of ``name`` (``None`` when the anchor never saw it)."""
        with self._cond:
            return self._entries.get(name)

    def names(self) -> list[str]:
        """The collections the anchor knows."""
        with self._cond:
            return sorted(self._entries)

    # -- writing ---------------------------------------------------------------------------

    def record(self, name: str, state: AnchoredState, *, force: bool = False) -> None:
        """Anchor ``state`` of ``name`` durably (never backwards unless ``force``).

        Raises:
            StorageError: When the anchor cannot be written.
        """
        with self._cond:
            old = self._entries.get(name)
            if force or old is None or not old.covers(state):
                self._entries[name] = state if force or old is None else _newest(old, state)
                self._changes += 1
            self._wait_durable(self._changes)

    def rewrap(self) -> bool:
        """Wrap the anchor key under the primary KEK (both slots); whether it changed."""
        with self._cond:
            if self._wrapped.kek_id == self._keks.primary_id:
                return False
            key = self._keks.unwrap(self._wrapped, associated_data=self._ad)
            self._wrapped = self._keks.wrap(key, associated_data=self._ad)
            for _ in range(2):  # one write per slot: no slot keeps the older KEK
                self._changes += 1
                self._wait_durable(self._changes)
        logger.info("state anchor: %s re-wrapped under %s", self.path, self._keks.primary_id)
        return True

    def forget(self, name: str) -> None:
        """Drop ``name`` from the anchor (the operator accepted that it is gone)."""
        with self._cond:
            if self._entries.pop(name, None) is not None:
                self._changes += 1
                self._wait_durable(self._changes)

    def advance(self, name: str, seq: int) -> None:
        """Anchor that the log of ``name`` is durable through ``seq`` (group-committed)."""
        with self._cond:
            old = self._entries.get(name)
            if old is not None and old.seq >= seq:
                return
            base = old or AnchoredState("hnsw", 0)
            self._entries[name] = AnchoredState(base.kind, base.generation, seq, base.digest)
            self._changes += 1
            self._wait_durable(self._changes)

    def _wait_durable(self, target: int) -> None:
        """Return once change ``target`` is on disk; called and returning with the lock."""
        while self._written < target:
            if self._writing:
                self._cond.wait()
                continue
            self._writing = True
            upto = self._changes
            self._counter += 1
            signed = self._encode()
            self._cond.release()
            try:
                self._write(signed)
            finally:
                self._cond.acquire()
                self._writing = False
                self._cond.notify_all()
            self._written = upto

    def _encode(self) -> bytes:
        document = {
            "format": FORMAT,
            "version": VERSION,
            "tenant": self._tenant,
            "counter": self._counter,
            "key": {
                "kek_id": self._wrapped.kek_id,
                "blob": base64.b64encode(self._wrapped.blob).decode(),
            },
            "collections": {name: asdict(s) for name, s in sorted(self._entries.items())},
        }
        body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        signed = MAGIC + len(body).to_bytes(_LEN, "big") + body
        return signed + hmac.digest(self._mac_key, signed, "sha256")

    def _write(self, slot: bytes) -> None:
        try:
            if len(slot) > self._slot:
                size = self._slot
                while size < len(slot):
                    size *= 2
                padded = slot.ljust(size, b"\0")
                atomic_write(self.path, [padded, padded], mode=FILE_MODE)
                self._slot = size
                self._open_fd(create=False)
                return
            offset = (self._counter % 2) * self._slot
            data = slot.ljust(self._slot, b"\0")
            done = 0
            while done < len(data):
                done += os.pwrite(self._fd, data[done:], offset + done)
            os.fdatasync(self._fd)
        except OSError as exc:
            raise storage_error(exc, path=self.path, operation="update the state anchor") from exc

    def close(self) -> None:
        """Release the anchor file (every update is already durable)."""
        with self._cond:
            while self._writing:
                self._cond.wait()
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = -1


def _newest(old: AnchoredState, new: AnchoredState) -> AnchoredState:
    if new.generation > old.generation:
        return AnchoredState(new.kind, new.generation, max(old.seq, new.seq), new.digest)
    return AnchoredState(old.kind, old.generation, max(old.seq, new.seq), old.digest)


def _parse_slot(slot: bytes) -> tuple[dict[str, Any], bytes, bytes] | None:
    if not slot.startswith(MAGIC):
        return None
    start = len(MAGIC) + _LEN
    length = int.from_bytes(slot[len(MAGIC) : start], "big")
    if start + length + _MAC > len(slot):
        return None
    signed, tag = slot[: start + length], slot[start + length : start + length + _MAC]
    try:
        document = json.loads(slot[start : start + length])
    except (ValueError, UnicodeDecodeError):
        return None
    return (document, signed, tag) if isinstance(document, dict) else None
