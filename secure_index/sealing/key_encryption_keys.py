"""Key-encryption keys (KEKs) for envelope encryption, pluggable behind :class:`KekProvider`.

Envelope encryption (as in NIST SP 800-57 Part 1, section 6.1.1, and every cloud KMS):
each file is encrypted with its own random data key, and only that short data key is
encrypted ("wrapped") by a long-lived KEK. Rotating a KEK therefore re-wraps a few
bytes per file instead of re-encrypting the data. A wrap is AES-256-GCM
(:class:`~secure_index.sealing.aead.AesGcmAead`) of the data key under the KEK, with
associated data = a domain tag, the KEK id and the caller's associated data (the file
header), so a wrapped key moved to another file, or relabelled with another KEK id,
fails to unwrap.

Two providers: :class:`KeyFileKeks` keeps versioned KEKs in a JSON key file (mode 0600,
rewritten atomically; a secret file, refused when group or others may access it or another
user owns it, see :mod:`crypto.secret_files`), :class:`EnvKeks` reads them from an
environment variable. A KMS provider only has to implement :class:`KekProvider`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from crypto.errors import KeyManagementError
from crypto.secret_files import read_secret_file
from secure_index.atomic_file import FILE_MODE, atomic_write
from secure_index.sealing.aead import AEAD_KEY_SIZE, AesGcmAead, require_associated_data

__all__ = [
    "DEFAULT_KEK_ENV",
    "EnvKeks",
    "KekProvider",
    "KekVersion",
    "KeyFileKeks",
    "WrappedKey",
    "load_keks",
]

logger = logging.getLogger(__name__)

DEFAULT_KEK_ENV = "FEDEMBED_INDEX_KEK"
KEY_FILE_FORMAT = "fedembed-kek-file"
KEY_FILE_VERSION = 1
KEK_ID_PREFIX = "kek-"
ENV_ID_PREFIX = "env-"
ENV_ID_HEX_CHARS = 8
WRAP_DOMAIN = b"fedembed/kek-wrap/v1"
_KEK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEK_NUMBER = re.compile(rf"^{KEK_ID_PREFIX}(\d+)$")
# Key file wire keys.
_FORMAT, _VERSION, _PRIMARY, _KEYS, _RETIRED = "format", "version", "primary", "keys", "retired"
_ID, _CREATED, _KEY = "id", "created", "key"
_CREATE_HINT = "fedembed index keys create --key-file PATH"


@dataclass(frozen=True)
class WrappedKey:
    """A data key encrypted under the KEK ``kek_id``."""

    kek_id: str
    blob: bytes


@dataclass(frozen=True)
class KekVersion:
    """One KEK version as listed to a user (never the key bytes)."""

    id: str
    created: str
    primary: bool


class KekProvider(Protocol):
    """Wraps and unwraps data keys; a KMS client can implement it."""

    @property
    def primary_id(self) -> str:
        """The id of the KEK that new wraps use."""
        ...

    def wrap(self, data_key: bytes, *, associated_data: bytes) -> WrappedKey:
        """Encrypt ``data_key`` under the primary KEK, binding ``associated_data``."""
        ...

    def unwrap(self, wrapped: WrappedKey, *, associated_data: bytes) -> bytes:
        """Decrypt a wrapped key.

        Raises:
            DecryptionError: When authentication fails.
            KeyManagementError: When ``wrapped.kek_id`` is unknown or retired.
        """
        ...


def _wrap_ad(kek_id: str, associated_data: bytes) -> bytes:
    ident = kek_id.encode()
    return WRAP_DOMAIN + len(ident).to_bytes(1, "big") + ident + associated_data


class _KekSet:
    """KEKs in memory: wrap under the primary, unwrap under any known id."""

    def __init__(self, keys: Mapping[str, bytes], primary: str, source: str) -> None:
        self._aeads = {kid: AesGcmAead(key) for kid, key in keys.items()}
        self._primary = primary
        self._source = source
        self._retired: set[str] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._source}, primary={self._primary!r})"

    @property
    def primary_id(self) -> str:
        """The id of the KEK that new wraps use."""
        return self._primary

    def wrap(self, data_key: bytes, *, associated_data: bytes) -> WrappedKey:
        """Encrypt ``data_key`` under the primary KEK (AES-256-GCM).

        Raises:
            ValueError: When ``associated_data`` is empty.
        """
        require_associated_data(associated_data)
        primary = self._primary
        blob = self._aeads[primary].encrypt(data_key, _wrap_ad(primary, associated_data))
        return WrappedKey(kek_id=primary, blob=blob)

    def unwrap(self, wrapped: WrappedKey, *, associated_data: bytes) -> bytes:
        """Decrypt a wrapped data key.

        Raises:
            DecryptionError: When authentication fails.
            KeyManagementError: When the KEK id is unknown or retired.
        """
        require_associated_data(associated_data)
        aead = self._aeads.get(wrapped.kek_id)
        if aead is None:
            raise self._unknown(wrapped.kek_id)
        return aead.decrypt(wrapped.blob, _wrap_ad(wrapped.kek_id, associated_data))

    def _unknown(self, kek_id: str) -> KeyManagementError:
        shown = kek_id if _KEK_ID.match(kek_id) else repr(kek_id[:64])
        if kek_id in self._retired:
            return KeyManagementError(
                f"key-encryption key {shown} was retired from {self._source}",
                expected="files wrapped only under key versions that are still in the key file",
                fix=(
                    "restore the file from a backup taken before the key was retired, or "
                    "restore the key file backup and run `fedembed index keys rotate` "
                    "(which re-wraps every file) before retiring it again"
                ),
            )
        return KeyManagementError(
            f"key-encryption key {shown} is not known to {self._source}",
            expected=f"one of the key versions {sorted(self._aeads)}",
            fix="start the service with the key file or FEDEMBED_INDEX_KEK value that "
            f"holds {shown}",
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _bad_key_file(path: Path, problem: str) -> KeyManagementError:
    return KeyManagementError(
        f"key file {path} is malformed: {problem}",
        expected=f"a JSON key file written by `{_CREATE_HINT}`",
        fix="restore the key file from its backup; never edit it by hand",
    )


class KeyFileKeks(_KekSet):
    """Versioned KEKs in a JSON key file (mode 0600, rewritten atomically on change).

    Use :meth:`create` or :meth:`load`; the constructor is internal.
    """

    def __init__(
        self,
        path: Path,
        versions: list[tuple[str, str, bytes]],
        primary: str,
        retired: dict[str, str],
    ) -> None:
        super().__init__({kid: key for kid, _, key in versions}, primary, f"key file {path}")
        self.path = Path(path)
        self._versions = list(versions)
        self._retired_at = dict(retired)
        self._retired = set(retired)
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path) -> KeyFileKeks:
        """Create a key file with one fresh 32-byte KEK ``kek-1``.

        Raises:
            KeyManagementError: When ``path`` already exists (it is never overwritten).
        """
        path = Path(path)
        if path.exists():
            raise KeyManagementError(
                f"key file {path} already exists",
                expected="a path where no key file exists yet",
                fix=f"use `fedembed index keys rotate --key-file {path}` to add a key "
                "version, or choose another path; never overwrite a key file (its keys "
                "decrypt the index)",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        first = f"{KEK_ID_PREFIX}1"
        keks = cls(path, [(first, _now(), secrets.token_bytes(AEAD_KEY_SIZE))], first, {})
        keks._persist()
        logger.info("keys: created key file %s with %s", path, keks.primary_id)
        return keks

    @classmethod
    def load(cls, path: Path) -> KeyFileKeks:
        """Load a key file (a secret file: see :mod:`crypto.secret_files`).

        Raises:
            SecretFileError: When group or others may access the file, or another user
                owns it (nothing of it is used).
            KeyManagementError: When the file is missing, malformed or holds a key of the
                wrong length.
        """
        path = Path(path)
        try:
            raw = read_secret_file(path, what="KEK file")
        except FileNotFoundError:
            raise KeyManagementError(
                f"key file {path} does not exist",
                expected="the key file that encrypted this index",
                fix=f"pass the right --key-file, or create a new one with `{_CREATE_HINT}` "
                "(a new key cannot decrypt an existing index)",
            ) from None
        except OSError as exc:
            raise KeyManagementError(
                f"key file {path} cannot be read: {exc.strerror}",
                expected="a key file readable by the user running fedembed",
                fix=f"fix the file's owner or permissions (chown to that user, chmod 600 {path})",
            ) from None
        versions, primary, retired = _parse_key_file(path, raw)
        return cls(path, versions, primary, retired)

    def rotate(self) -> str:
        """Add a fresh KEK version, make it primary and persist; returns its id."""
        with self._lock:
            numbers = [
                int(m.group(1))
                for kid in [*self._aeads, *self._retired_at]
                if (m := _KEK_NUMBER.match(kid))
            ]
            new_id = f"{KEK_ID_PREFIX}{max(numbers, default=0) + 1}"
            key = secrets.token_bytes(AEAD_KEY_SIZE)
            self._versions.append((new_id, _now(), key))
            self._aeads[new_id] = AesGcmAead(key)
            old_primary, self._primary = self._primary, new_id
            try:
                self._persist()
            except Exception:
                self._versions.pop()
                del self._aeads[new_id]
                self._primary = old_primary
                raise
        logger.info("keys: rotated %s, primary is now %s", self.path, new_id)
        return new_id

    def retire(self, kek_id: str) -> None:
        """Remove an old KEK version from the key file; its files can no longer be opened.

        Raises:
            KeyManagementError: When ``kek_id`` is the primary or is not in the file.
        """
        with self._lock:
            if kek_id == self._primary:
                raise KeyManagementError(
                    f"{kek_id} is the primary key-encryption key of {self.path}",
                    expected="an older, non-primary key version",
                    fix="run `fedembed index keys rotate` first, which makes a new primary "
                    "and re-wraps the index under it",
                )
            if kek_id not in self._aeads:
                raise self._unknown(kek_id)
            before = (list(self._versions), dict(self._aeads), dict(self._retired_at))
            self._versions = [v for v in self._versions if v[0] != kek_id]
            del self._aeads[kek_id]
            self._retired_at[kek_id] = _now()
            try:
                self._persist()
            except Exception:
                self._versions, self._aeads, self._retired_at = before
                raise
            self._retired.add(kek_id)
        logger.info("keys: retired %s from %s", kek_id, self.path)

    def versions(self) -> list[KekVersion]:
        """The KEK versions in the file, oldest first (no key bytes)."""
        with self._lock:
            return [
                KekVersion(kid, created, kid == self._primary) for kid, created, _ in self._versions
            ]

    def _persist(self) -> None:
        document = {
            _FORMAT: KEY_FILE_FORMAT,
            _VERSION: KEY_FILE_VERSION,
            _PRIMARY: self._primary,
            _KEYS: [
                {_ID: kid, _CREATED: created, _KEY: base64.b64encode(key).decode()}
                for kid, created, key in self._versions
            ],
            _RETIRED: [{_ID: kid, _CREATED: at} for kid, at in sorted(self._retired_at.items())],
        }
        atomic_write(self.path, [json.dumps(document, indent=2).encode() + b"\n"], mode=FILE_MODE)


def _parse_key_file(
    path: Path, raw: bytes
) -> tuple[list[tuple[str, str, bytes]], str, dict[str, str]]:
    try:
        doc: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad_key_file(path, "not JSON") from None
    if not isinstance(doc, dict) or doc.get(_FORMAT) != KEY_FILE_FORMAT:
        raise _bad_key_file(path, f"no {_FORMAT!r}: {KEY_FILE_FORMAT!r} field")
    if doc.get(_VERSION) != KEY_FILE_VERSION:
        raise _bad_key_file(path, f"unsupported version (this fedembed reads {KEY_FILE_VERSION})")
    entries, retired_entries = doc.get(_KEYS), doc.get(_RETIRED, [])
    if not isinstance(entries, list) or not entries or not isinstance(retired_entries, list):
        raise _bad_key_file(path, f"{_KEYS!r} must be a non-empty list")
    versions: list[tuple[str, str, bytes]] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in (_ID, _CREATED, _KEY)
        ):
            raise _bad_key_file(path, f"key entry {number} needs string id, created and key")
        kid = entry[_ID]
        if not _KEK_ID.match(kid) or any(kid == v[0] for v in versions):
            raise _bad_key_file(path, f"key entry {number} has an invalid or duplicate id")
        try:
            key = base64.b64decode(entry[_KEY], validate=True)
        except (binascii.Error, ValueError):
            raise _bad_key_file(path, f"key {kid} is not base64") from None
        if len(key) != AEAD_KEY_SIZE:
            raise _bad_key_file(path, f"key {kid} is {len(key)} bytes, not {AEAD_KEY_SIZE}")
        versions.append((kid, entry[_CREATED], key))
    primary = doc.get(_PRIMARY)
    if not isinstance(primary, str) or primary not in {v[0] for v in versions}:
        raise _bad_key_file(path, "the primary id is not one of its keys")
    retired: dict[str, str] = {}
    for entry in retired_entries:
        if not isinstance(entry, dict) or not isinstance(entry.get(_ID), str):
            raise _bad_key_file(path, "a retired entry has no id")
        retired[entry[_ID]] = str(entry.get(_CREATED, ""))
    return versions, primary, retired


class EnvKeks(_KekSet):
    """KEKs from an environment variable: ``id=base64key,id=base64key`` (first is primary).

    A bare base64 key is accepted too; its id is ``env-`` + the first 8 hex digits of the
    key's SHA-256. Use :meth:`from_env`.
    """

    @classmethod
    def from_env(cls, var: str = DEFAULT_KEK_ENV) -> EnvKeks:
        """Read the KEKs from ``var`` (never echoes its value in errors).

        Raises:
            KeyManagementError: When the variable is unset, empty or malformed.
        """
        value = os.environ.get(var, "").strip()
        fix = (
            f"set {var} to comma-separated id=base64 entries of 32-byte keys "
            f"(e.g. kek-1=$(openssl rand -base64 32)), or use a key file (`{_CREATE_HINT}`)"
        )
        if not value:
            raise KeyManagementError(
                f"environment variable {var} is not set",
                expected="the key-encryption keys of the index",
                fix=fix,
            )
        keys: dict[str, bytes] = {}
        bare = _b64_key(value)
        if bare is not None:
            keys[ENV_ID_PREFIX + hashlib.sha256(bare).hexdigest()[:ENV_ID_HEX_CHARS]] = bare
        else:
            for number, entry in enumerate(value.split(","), start=1):
                kid, sep, encoded = entry.strip().partition("=")
                key = _b64_key(encoded.strip()) if sep else None
                kid = kid.strip()
                if key is None or not _KEK_ID.match(kid) or kid in keys:
                    raise KeyManagementError(
                        f"entry {number} of environment variable {var} is malformed "
                        "(value not shown)",
                        expected="id=base64 with a unique id and a 32-byte key",
                        fix=fix,
                    )
                keys[kid] = key
        primary = next(iter(keys))
        return cls(keys, primary, f"environment variable {var}")


def _b64_key(text: str) -> bytes | None:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == AEAD_KEY_SIZE else None


def load_keks(*, key_file: Path | None = None, env_var: str = DEFAULT_KEK_ENV) -> KekProvider:
    """The KEKs of the index: the key file if given, else the environment variable.

    Raises:
        KeyManagementError: When neither is available, or the chosen one is invalid.
    """
    if key_file is not None:
        return KeyFileKeks.load(Path(key_file))
    if os.environ.get(env_var, "").strip():
        return EnvKeks.from_env(env_var)
    raise KeyManagementError(
        "no key-encryption key was configured",
        expected=f"a key file (--key-file) or the environment variable {env_var}",
        fix=f"create a key file with `{_CREATE_HINT}` and pass --key-file PATH, or set "
        f"{env_var} to id=base64 entries of 32-byte keys",
    )
