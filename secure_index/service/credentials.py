"""Per-partner and per-node API keys: issued once, stored hashed, revocable at once.

A token reads ``fek_<key_id>_<secret>``: ``key_id`` is 12 hex characters (public; it
names the key in the audit log and the admin API) and ``secret`` is 32 bytes from
:mod:`secrets` in URL-safe base64 (43 characters). The token is returned once by
:meth:`CredentialStore.create` and never stored: the SQLite file keeps only
SHA-256(secret).

Why a fast hash and not bcrypt/scrypt/Argon2: slow, salted password hashes exist to
make guessing *low-entropy* human passwords expensive. Our secrets are 256 random bits,
so an attacker who steals the file faces 2^256 guesses whatever the hash costs, and no
two secrets are alike, so a salt adds nothing. A slow hash would only add milliseconds
of CPU to every request (and hand a denial-of-service lever to anyone sending junk
tokens). The stored digest is compared with :func:`hmac.compare_digest`.

The store is one SQLite file in WAL journal mode (created with mode 0600; SQLite gives
its ``-wal`` and ``-shm`` files the same mode). It is safe from many threads (one
connection behind a lock) and from several processes (writes take ``BEGIN IMMEDIATE``,
readers wait up to :data:`BUSY_TIMEOUT_MS` for a writer). :meth:`CredentialStore.authenticate`
reads the database on every call, so a key revoked by the CLI while the server runs
is refused by the very next request; it is one primary-key lookup (tens of
microseconds). Neither tokens nor their hashes are ever logged.

A partner key also carries its query policy: whether it may send raw query vectors
(``vector_queries``, off unless granted: 384 basis vectors would read every stored
coordinate), how much of each score it gets back (``score_release``: ``rank`` by
default, see :mod:`secure_index.service.score_release`), and how many answered queries
it may spend per window (``query_budget`` per ``budget_window_s``, see
:mod:`secure_index.service.query_budget`). A key whose queries look like probing is
suspended (``suspended_at``) until the operator resumes it.

Schema versions: 1 had no query policy; opening a version-1 file adds the columns with
their defaults (no vector queries, rank release, 1000 queries a day, not suspended) and
marks it version 2.
"""

from __future__ import annotations

import builtins
import contextlib
import enum
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from crypto.errors import KeyManagementError
from index_client.names import NAME_RE, NAME_RULE, name_problem, shown
from secure_index.errors import RequestError, StorageError
from secure_index.service.score_release import ScoreRelease

__all__ = [
    "DEFAULT_BUDGET_WINDOW_S",
    "DEFAULT_QUERY_BUDGET",
    "DEFAULT_TOP_K_CAP",
    "TOKEN_PREFIX",
    "Credential",
    "CredentialRole",
    "CredentialStore",
]

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "fek_"
KEY_ID_HEX_CHARS = 12
SECRET_BYTES = 32
_SECRET_CHARS = 43  # len(base64url(32 bytes)) without padding
_TOKEN_RE = re.compile(
    rf"{TOKEN_PREFIX}([0-9a-f]{{{KEY_ID_HEX_CHARS}}})_([A-Za-z0-9_-]{{{_SECRET_CHARS}}})"
)
TOKEN_LENGTH = len(TOKEN_PREFIX) + KEY_ID_HEX_CHARS + 1 + _SECRET_CHARS
ALL_COLLECTIONS = "*"
COLLECTION_RE = NAME_RE  # scopes are collection names (or "*")
FILE_MODE = 0o600
BUSY_TIMEOUT_MS = 5000
SCHEMA_VERSION = 2
DEFAULT_TOP_K_CAP = 10  # what nDCG@10 needs; more results per answer leak more per query
DEFAULT_QUERY_BUDGET = 1000  # answered queries per window
DEFAULT_BUDGET_WINDOW_S = 86_400  # one day
_ID_ATTEMPTS = 8
_DUMMY_DIGEST = bytes(hashlib.sha256().digest_size)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    key_id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    top_k_cap INTEGER NOT NULL,
    rate_per_minute INTEGER NOT NULL,
    burst INTEGER NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    vector_queries INTEGER NOT NULL DEFAULT 0,
    score_release TEXT NOT NULL DEFAULT 'rank',
    query_budget INTEGER NOT NULL DEFAULT 1000,
    budget_window_s INTEGER NOT NULL DEFAULT 86400,
    suspended_at TEXT
)
"""
# Version 1 -> 2: the query policy and the suspension state, with their defaults.
_MIGRATE_1_TO_2 = (
    "ALTER TABLE credentials ADD COLUMN vector_queries INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE credentials ADD COLUMN score_release TEXT NOT NULL DEFAULT 'rank'",
    "ALTER TABLE credentials ADD COLUMN query_budget INTEGER NOT NULL DEFAULT 1000",
    "ALTER TABLE credentials ADD COLUMN budget_window_s INTEGER NOT NULL DEFAULT 86400",
    "ALTER TABLE credentials ADD COLUMN suspended_at TEXT",
)
_COLUMNS = (
    "key_id, role, name, scopes, top_k_cap, rate_per_minute, burst, created_at, revoked_at, "
    "vector_queries, score_release, query_budget, budget_window_s, suspended_at"
)


class CredentialRole(enum.StrEnum):
    """Who holds a key."""

    PARTNER = "partner"  # queries collections
    NODE = "node"  # uploads and deletes its own documents


@dataclass(frozen=True)
class Credential:
    """A key's public record (never the token, never its hash).

    Attributes:
        key_id: 12 hex characters, the public part of the token.
        role: Partner or node.
        name: The partner's name, or the node id for a node key (owner of its uploads).
        scopes: Collection names the key may use; ``"*"`` means every collection.
        top_k_cap: Largest ``k`` a query may ask for.
        rate_per_minute: Sustained request rate.
        burst: Requests allowed at once before the rate applies.
        created_at: ISO-8601 UTC time of issue.
        revoked_at: ISO-8601 UTC time of revocation, or None while the key is valid.
        vector_queries: Whether the key may query with raw vectors (text only if not).
        score_release: What its answers carry of each score: rank only, coarse, exact.
        query_budget: Answered queries allowed per window.
        budget_window_s: The budget's window in seconds.
        suspended_at: ISO-8601 UTC time the key was suspended for probing, or None.
    """

    key_id: str
    role: CredentialRole
    name: str
    scopes: frozenset[str]
    top_k_cap: int
    rate_per_minute: int
    burst: int
    created_at: str
    revoked_at: str | None
    vector_queries: bool = False
    score_release: ScoreRelease = ScoreRelease.RANK
    query_budget: int = DEFAULT_QUERY_BUDGET
    budget_window_s: int = DEFAULT_BUDGET_WINDOW_S
    suspended_at: str | None = None

    def allows(self, collection: str) -> bool:
        """Whether this key may use ``collection``."""
        return ALL_COLLECTIONS in self.scopes or collection in self.scopes


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def _invalid(problem: str, expected: str, fix: str) -> RequestError:
    return RequestError(problem, expected=expected, fix=fix)


def _check_name(name: str) -> str:
    # a node key's name is the owner of its uploads: a segment of the store's block URLs
    problem = name_problem(name)
    if problem is not None:
        raise _invalid(
            f"key holder name {shown(name)} is not allowed: {problem}",
            f"a partner name or node id of {NAME_RULE}",
            "pass the partner's name or the node id, e.g. 'insurer-x' or 'node-a'",
        )
    return name


def _check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    if isinstance(scopes, str | bytes):
        raise _invalid(
            f"scopes must be a collection of names, got the single string {scopes!r}",
            "a list such as ['claims']",
            "wrap the collection name in a list",
        )
    checked = frozenset(scopes)
    if not checked:
        raise _invalid(
            "a key needs at least one scope",
            "one or more collection names, or '*' for all",
            "pass --scope COLLECTION (repeat for several)",
        )
    for scope in sorted(checked, key=str):
        if scope != ALL_COLLECTIONS and not (
            isinstance(scope, str) and COLLECTION_RE.fullmatch(scope)
        ):
            raise _invalid(
                f"scope {scope!r} is not a collection name",
                f"names matching {COLLECTION_RE.pattern} or '*'",
                "use the collection's exact name",
            )
    return checked


def _check_positive(field: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _invalid(
            f"{field} is {value!r}", f"a positive integer for {field}", f"set {field} to 1 or more"
        )
    return value


def _check_release(value: object) -> ScoreRelease:
    try:
        return ScoreRelease(str(value))
    except ValueError:
        raise _invalid(
            f"score_release is {value!r}",
            f"one of {[str(m) for m in ScoreRelease]}",
            "use 'rank' (the default); 'coarse' and 'exact' let a partner rebuild vectors",
        ) from None


def _check_flag(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _invalid(f"{field} is {value!r}", "true or false", f"set {field} to a boolean")
    return value


def _row_to_credential(row: tuple[Any, ...]) -> Credential:
    key_id, role, name, scopes, top_k_cap, rate, burst, created_at, revoked_at = row[:9]
    vector_queries, release, budget, window, suspended_at = row[9:]
    return Credential(
        key_id=key_id,
        role=CredentialRole(role),
        name=name,
        scopes=frozenset(json.loads(scopes)),
        top_k_cap=int(top_k_cap),
        rate_per_minute=int(rate),
        burst=int(burst),
        created_at=created_at,
        revoked_at=revoked_at,
        vector_queries=bool(vector_queries),
        score_release=ScoreRelease(release),
        query_budget=int(budget),
        budget_window_s=int(window),
        suspended_at=suspended_at,
    )


class CredentialStore:
    """Issue, look up, list, revoke and authenticate API keys in one SQLite file.

    Args:
        path: The database file; created (mode 0600) with its folder if missing.

    Raises:
        KeyManagementError: When the file is not a credential database.
        StorageError: When the file cannot be created.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._create_file()
        try:
            self._db = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # autocommit: every read sees the latest commit
                check_same_thread=False,  # guarded by self._lock
            )
        except sqlite3.Error as exc:
            raise self._corrupt(exc) from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            with self._write() as db:
                db.execute(_SCHEMA)
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version == 1:
                    for statement in _MIGRATE_1_TO_2:
                        db.execute(statement)
                    logger.info("credentials: %s migrated from schema 1 to 2", self.path)
                if version in (0, 1):
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                elif version != SCHEMA_VERSION:
                    raise KeyManagementError(
                        f"{self.path} has credential schema version {version}",
                        expected=f"version {SCHEMA_VERSION}",
                        fix="use the fedembed release that wrote this file",
                    )
        except sqlite3.Error as exc:
            self._db.close()
            raise self._corrupt(exc) from exc

    def _create_file(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & 0o077:
                logger.warning(
                    "credentials: %s has mode %o; chmod 600 it (only the service reads it)",
                    self.path,
                    mode,
                )
            return
        except OSError as exc:
            raise StorageError(
                f"could not create the credential database {self.path}: {exc.strerror}",
                expected="a writable data directory",
                fix="check the permissions and free space of the data directory",
            ) from exc
        os.close(fd)
        logger.info("credentials: created %s", self.path)

    def _corrupt(self, exc: sqlite3.Error) -> KeyManagementError:
        return KeyManagementError(
            f"{self.path} is not a usable credential database ({exc})",
            expected="the SQLite file fedembed created for API keys",
            fix="restore it from a backup, or move it away and issue new keys",
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, exclusive across threads and processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> builtins.list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def create(
        self,
        *,
        role: CredentialRole,
        name: str,
        scopes: Iterable[str],
        top_k_cap: int = DEFAULT_TOP_K_CAP,
        rate_per_minute: int = 600,
        burst: int = 60,
        vector_queries: bool = False,
        score_release: ScoreRelease | str = ScoreRelease.RANK,
        query_budget: int = DEFAULT_QUERY_BUDGET,
        budget_window_s: int = DEFAULT_BUDGET_WINDOW_S,
    ) -> tuple[Credential, str]:
        """Issue a key; the token is returned here and nowhere else.

        Args:
            role: Partner or node.
            name: The partner's name or the node id.
            scopes: Collection names the key may use (``"*"`` for all).
            top_k_cap: Largest ``k`` per query.
            rate_per_minute: Sustained request rate.
            burst: Requests allowed at once.
            vector_queries: Grant raw vector queries (risky: basis vectors probe).
            score_release: ``rank`` (default), ``coarse`` or ``exact`` (risky).
            query_budget: Answered queries per window.
            budget_window_s: The budget's window in seconds.

        Returns:
            The key's record and its token ``fek_<key_id>_<secret>`` (shown once).

        Raises:
            RequestError: When an argument is invalid (the message says which and why).
        """
        role = CredentialRole(role)
        cred_scopes = _check_scopes(scopes)
        cred = Credential(
            key_id="",
            role=role,
            name=_check_name(name),
            scopes=cred_scopes,
            top_k_cap=_check_positive("top_k_cap", top_k_cap),
            rate_per_minute=_check_positive("rate_per_minute", rate_per_minute),
            burst=_check_positive("burst", burst),
            created_at=_now(),
            revoked_at=None,
            vector_queries=_check_flag("vector_queries", vector_queries),
            score_release=_check_release(score_release),
            query_budget=_check_positive("query_budget", query_budget),
            budget_window_s=_check_positive("budget_window_s", budget_window_s),
        )
        secret = secrets.token_urlsafe(SECRET_BYTES)
        for _ in range(_ID_ATTEMPTS):
            key_id = secrets.token_hex(KEY_ID_HEX_CHARS // 2)
            try:
                with self._write() as db:
                    db.execute(
                        f"INSERT INTO credentials ({_COLUMNS}, secret_sha256) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            key_id,
                            str(role),
                            cred.name,
                            json.dumps(sorted(cred_scopes)),
                            cred.top_k_cap,
                            cred.rate_per_minute,
                            cred.burst,
                            cred.created_at,
                            None,
                            int(cred.vector_queries),
                            str(cred.score_release),
                            cred.query_budget,
                            cred.budget_window_s,
                            None,
                            _digest(secret),
                        ),
                    )
            except sqlite3.IntegrityError:  # key id collision: draw another
                continue
            break
        else:  # pragma: no cover - 2^48 ids; needs a broken random source
            raise KeyManagementError(
                "could not draw an unused key id",
                expected="a working random number generator",
                fix="check the system's entropy source",
            )
        issued = replace(cred, key_id=key_id)
        logger.info("credentials: issued %s key %s for %s", role, key_id, cred.name)
        return issued, f"{TOKEN_PREFIX}{key_id}_{secret}"

    def revoke(self, key_id: str) -> Credential:
        """Revoke a key at once (every process sees it on its next request).

        Revoking a revoked key changes nothing and returns its record.

        Raises:
            KeyManagementError: When no key has this id.
        """
        with self._write() as db:
            cred = self._existing(db, key_id)
            if cred.revoked_at is not None:
                return cred
            revoked_at = _now()
            db.execute(
                "UPDATE credentials SET revoked_at = ? WHERE key_id = ?", (revoked_at, key_id)
            )
        logger.info("credentials: revoked key %s of %s", key_id, cred.name)
        return replace(cred, revoked_at=revoked_at)

    @staticmethod
    def _existing(db: sqlite3.Connection, key_id: str) -> Credential:
        row = db.execute(
            f"SELECT {_COLUMNS} FROM credentials WHERE key_id = ?", (key_id,)
        ).fetchone()
        if row is None:
            raise KeyManagementError(
                f"no API key with id {key_id!r}",
                expected="a key id as listed by `fedembed partner list`",
                fix="run `fedembed partner list --include-revoked` and copy the key_id",
            )
        return _row_to_credential(row)

    def suspend(self, key_id: str) -> Credential:
        """Suspend a key for probing: every process refuses its queries from now on.

        Suspending a suspended key keeps its first suspension time.

        Raises:
            KeyManagementError: When no key has this id.
        """
        return self._set_suspended(key_id, suspend=True)

    def resume(self, key_id: str) -> Credential:
        """Lift a key's suspension (the operator's ``fedembed partner resume``).

        Raises:
            KeyManagementError: When no key has this id.
        """
        return self._set_suspended(key_id, suspend=False)

    def _set_suspended(self, key_id: str, *, suspend: bool) -> Credential:
        with self._write() as db:
            cred = self._existing(db, key_id)
            if (cred.suspended_at is not None) == suspend:
                return cred
            when = _now() if suspend else None
            db.execute("UPDATE credentials SET suspended_at = ? WHERE key_id = ?", (when, key_id))
        logger.warning(
            "credentials: %s key %s of %s", "suspended" if suspend else "resumed", key_id, cred.name
        )
        return replace(cred, suspended_at=when)

    def get(self, key_id: str) -> Credential | None:
        """The record of ``key_id`` (revoked or not), or None."""
        rows = self._read(f"SELECT {_COLUMNS} FROM credentials WHERE key_id = ?", (key_id,))
        return _row_to_credential(rows[0]) if rows else None

    def list(
        self, *, role: CredentialRole | None = None, include_revoked: bool = False
    ) -> builtins.list[Credential]:
        """Keys in order of issue, optionally of one role and with revoked ones."""
        sql = f"SELECT {_COLUMNS} FROM credentials WHERE 1"
        args: builtins.list[Any] = []
        if role is not None:
            sql += " AND role = ?"
            args.append(str(CredentialRole(role)))
        if not include_revoked:
            sql += " AND revoked_at IS NULL"
        rows = self._read(sql + " ORDER BY rowid", tuple(args))
        return [_row_to_credential(r) for r in rows]

    def authenticate(self, token: str) -> Credential | None:
        """The valid key a token belongs to, or None (malformed, unknown, wrong, revoked).

        Reads the database on every call, so a revocation by another process counts at
        once. The secret's digest is compared in constant time. A suspended key is
        returned (with ``suspended_at`` set): the gateway refuses its queries with 403.
        """
        if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
            return None
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        rows = self._read(
            f"SELECT {_COLUMNS}, secret_sha256 FROM credentials WHERE key_id = ?", (key_id,)
        )
        stored = bytes(rows[0][-1]) if rows else _DUMMY_DIGEST
        if not hmac.compare_digest(_digest(secret), stored) or not rows:
            return None
        cred = _row_to_credential(rows[0][:-1])
        return cred if cred.revoked_at is None else None

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> CredentialStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
