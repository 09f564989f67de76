"""The admin API's tokens: random secrets shown once, stored as SHA-256 digests, revocable.

A secret reads ``fea_<token_id>.<secret>``: ``token_id`` is 12 hex characters (public; it
names the token in listings and in the audit trail) and ``secret`` is 32 bytes from
:mod:`secrets` in URL-safe base64 (43 characters). :meth:`AdminTokenStore.create`
returns it once; the file keeps only SHA-256 of the whole secret, compared with
:func:`hmac.compare_digest`. As for the index's API keys
(:mod:`secure_index.service.credentials`), a fast hash is the right one: the secret
carries 256 random bits, so nothing is gained by a slow, salted password hash, and a slow
hash would hand a denial-of-service lever to anyone sending junk tokens.

The store is one JSON file (``<home>/admin/tokens.json``), mode 0600, replaced atomically
(:func:`crypto.secret_files.write_secret_file`) under a file lock, so the CLI and the
running service can both change it. :meth:`AdminTokenStore.authenticate` checks the file
on every call (a ``stat``; it is parsed again only when it changed), so a token revoked
by ``fedembed coordinator admin token revoke`` is refused by the very next request.
Neither secrets nor their digests are ever logged or returned.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from coordinator.admin.errors import AdminError, AdminInvalidError, AdminNotFoundError
from coordinator.admin.tokens import AdminRole, AdminToken
from crypto.secret_files import read_secret_file, write_secret_file
from index_client.names import NAME_RULE, name_problem, shown

__all__ = [
    "TOKENS_FILE",
    "TOKEN_ID_RE",
    "TOKEN_PREFIX",
    "AdminTokenStore",
    "TokenStoreError",
]

logger = logging.getLogger(__name__)

TOKENS_FILE = "tokens.json"
TOKEN_PREFIX = "fea_"
FILE_FORMAT = "fedembed-admin-tokens"
FILE_VERSION = 1
_ID_HEX = 12
_SECRET_BYTES = 32
_SECRET_CHARS = 43
TOKEN_ID_RE = re.compile(rf"[0-9a-f]{{{_ID_HEX}}}")
_SECRET_RE = re.compile(rf"{TOKEN_PREFIX}([0-9a-f]{{{_ID_HEX}}})\.[A-Za-z0-9_-]{{{_SECRET_CHARS}}}")
_SECRET_LENGTH = len(TOKEN_PREFIX) + _ID_HEX + 1 + _SECRET_CHARS
_DUMMY_DIGEST = "0" * 64
_LOCK_TIMEOUT_S = 30.0


class TokenStoreError(AdminError):
    """The token file cannot be read or written (the service's trouble, not the caller's)."""

    status = 503


@dataclass(frozen=True)
class _Entry:
    token: AdminToken
    digest: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _check_name(name: object) -> str:
    problem = name_problem(name) if isinstance(name, str) else "it is not a string"
    if problem is not None:
        raise AdminInvalidError(
            f"token name {shown(name)} is not allowed: {problem}",
            expected=f"a token name of {NAME_RULE}",
            fix="name the token after its holder or use, e.g. 'ops-alice' or 'prometheus'",
        )
    assert isinstance(name, str)
    return name


def _check_role(role: object) -> AdminRole:
    try:
        return AdminRole(str(role))
    except ValueError:
        raise AdminInvalidError(
            f"token role {shown(role)} does not exist",
            expected="one of " + ", ".join(r.value for r in AdminRole),
            fix="use 'auditor' to read, 'operator' for runs and models, 'admin' for everything",
        ) from None


class AdminTokenStore:
    """Issue, list, revoke and authenticate admin API tokens kept in one JSON file.

    Args:
        path: The token file; created (mode 0600, folder 0700) by the first ``create``.

    Raises:
        TokenStoreError: (from every method) When the file is corrupt, not owner-only,
            or cannot be written.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file_lock = FileLock(str(self.path) + ".lock", timeout=_LOCK_TIMEOUT_S)
        self._cache: tuple[tuple[int, int, int], dict[str, _Entry]] | None = None

    def create(self, name: str, role: AdminRole | str) -> tuple[AdminToken, str]:
        """Issue a token; its secret is returned here and nowhere else.

        Raises:
            AdminInvalidError: When the name breaks the name rule or the role is unknown.
        """
        checked_name, checked_role = _check_name(name), _check_role(role)
        with self._writing() as entries:
            token_id = secrets.token_hex(_ID_HEX // 2)
            while token_id in entries:  # pragma: no cover - 2^48 ids
                token_id = secrets.token_hex(_ID_HEX // 2)
            secret = f"{TOKEN_PREFIX}{token_id}.{secrets.token_urlsafe(_SECRET_BYTES)}"
            token = AdminToken(token_id, checked_name, checked_role, _now())
            entries[token_id] = _Entry(token, _digest(secret))
        logger.info("admin tokens: issued %s token %s (%s)", checked_role, token_id, checked_name)
        return token, secret

    def list(self, *, include_revoked: bool = True) -> builtins.list[AdminToken]:
        """Tokens in order of issue (revoked ones too unless ``include_revoked`` is False)."""
        tokens = [entry.token for entry in self._entries().values()]
        return [t for t in tokens if include_revoked or t.revoked is None]

    def get(self, token_id: str) -> AdminToken | None:
        """The record of ``token_id`` (revoked or not), or None."""
        entry = self._entries().get(token_id)
        return entry.token if entry else None

    def revoke(self, token_id: str) -> AdminToken:
        """Revoke a token at once; revoking a revoked token returns its record unchanged.

        Raises:
            AdminNotFoundError: When no token has this id.
        """
        with self._writing() as entries:
            entry = entries.get(token_id)
            if entry is None:
                raise AdminNotFoundError(
                    f"no admin API token with id {shown(token_id)}",
                    expected="a token_id as listed by GET /v1/tokens "
                    "(`fedembed coordinator admin token list`)",
                    fix="list the tokens and copy the token_id",
                )
            if entry.token.revoked is not None:
                return entry.token
            revoked = replace(entry.token, revoked=_now())
            entries[token_id] = _Entry(revoked, entry.digest)
        logger.info("admin tokens: revoked token %s (%s)", token_id, revoked.name)
        return revoked

    def authenticate(self, secret: str) -> AdminToken | None:
        """The live token ``secret`` belongs to, or None (malformed, unknown, wrong, revoked)."""
        if not isinstance(secret, str) or len(secret) != _SECRET_LENGTH:
            return None
        match = _SECRET_RE.fullmatch(secret)
        if match is None:
            return None
        entry = self._entries().get(match.group(1))
        stored = entry.digest if entry else _DUMMY_DIGEST
        if not hmac.compare_digest(_digest(secret), stored) or entry is None:
            return None
        return entry.token if entry.token.revoked is None else None

    # --- the file ------------------------------------------------------------------

    def _corrupt(self, problem: str) -> TokenStoreError:
        return TokenStoreError(
            f"the admin token file {self.path} {problem}",
            expected=f"the {FILE_FORMAT} JSON file the admin API wrote (mode 0600)",
            fix="restore it from a backup, or move it away and issue new tokens with "
            "`fedembed coordinator admin token create`",
        )

    def _entries(self) -> dict[str, _Entry]:
        """The file's tokens (parsed again only when the file changed)."""
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._corrupt(f"cannot be examined ({exc.strerror})") from exc
        stamp = (status.st_ino, status.st_mtime_ns, status.st_size)
        with self._lock:
            if self._cache is not None and self._cache[0] == stamp:
                return dict(self._cache[1])
        entries = self._parse()
        with self._lock:
            self._cache = (stamp, entries)
        return dict(entries)

    def _parse(self) -> dict[str, _Entry]:
        try:
            raw = read_secret_file(self.path, what="admin token file")
        except FileNotFoundError:
            return {}
        except AdminError:
            raise
        except Exception as exc:  # SecretFileError (mode, owner) or OSError
            problem = getattr(exc, "problem", None) or getattr(exc, "strerror", None) or str(exc)
            raise self._corrupt(f"cannot be read: {problem}") from exc
        try:
            document = json.loads(raw.decode("utf-8"))
            if document.get("format") != FILE_FORMAT or document.get("version") != FILE_VERSION:
                raise ValueError("wrong format or version")
            return {item["token_id"]: self._entry(item) for item in document["tokens"]}
        except (UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise self._corrupt(f"is not a valid token file ({exc})") from exc

    @staticmethod
    def _entry(item: dict[str, Any]) -> _Entry:
        token_id, digest = str(item["token_id"]), str(item["secret_sha256"])
        if not TOKEN_ID_RE.fullmatch(token_id) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"token {token_id!r} has a malformed id or digest")
        revoked = item.get("revoked")
        token = AdminToken(
            token_id=token_id,
            name=_check_name(item["name"]),
            role=AdminRole(item["role"]),
            created=str(item["created"]),
            revoked=None if revoked is None else str(revoked),
        )
        return _Entry(token, digest)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[dict[str, _Entry]]:
        """Read-modify-write of the file, exclusive across threads and processes."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = self._file_lock.acquire()
        except OSError as exc:
            raise self._corrupt(f"cannot be locked ({exc})") from exc
        with lock:
            entries = self._parse()
            yield entries
            document = {
                "format": FILE_FORMAT,
                "version": FILE_VERSION,
                "tokens": [
                    {
                        "token_id": e.token.token_id,
                        "name": e.token.name,
                        "role": e.token.role.value,
                        "created": e.token.created,
                        "revoked": e.token.revoked,
                        "secret_sha256": e.digest,
                    }
                    for e in entries.values()
                ],
            }
            try:
                write_secret_file(self.path, (json.dumps(document, indent=2) + "\n").encode())
            except OSError as exc:
                raise self._corrupt(f"cannot be written ({exc.strerror})") from exc
