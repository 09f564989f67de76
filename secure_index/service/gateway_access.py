"""Access control of the query gateway: keys, roles, scopes, rate limits and limits.

``GatewayAccess`` authenticates a caller (a partner or node API key, or the operator's
admin token, sent as ``Authorization: Bearer``; the FastAPI dependencies of
:mod:`secure_index.service.deps` call it) and authorises a request (role, collection
scope, per-key rate limit; the rate token is taken first). A denial after
authentication is appended to the hash-chained audit log before the error is raised,
except the second and later 429s of a streak, which one summary record counts when the
streak ends; a request that fails authentication (401) is never audited, so neither
floods the log. ``Action`` and ``Decision`` are the
audit log's vocabulary; ``GatewayLimits`` holds the gateway's request limits.
"""

import hmac
import math
import re
from collections.abc import Sequence

from secure_index.service.audit_log import AuditLog
from secure_index.service.audit_record import ids_digest
from secure_index.service.credentials import Credential, CredentialRole, CredentialStore
from secure_index.service.http_errors import ApiError
from secure_index.service.rate_limit import RateLimiter

__all__ = [
    "ADMIN_ACTOR",
    "BEARER",
    "Action",
    "Decision",
    "GatewayAccess",
    "GatewayLimits",
    "bearer_token",
]

BEARER = "Bearer "
_BEARER_HEADER = re.compile(r"Bearer ([A-Za-z0-9._~+/-]+=*)")
ADMIN_ACTOR = "admin"


class Action:
    """Audit log action names."""

    QUERY = "query"
    UPLOAD = "upload"
    DELETE = "delete"
    CREATE_COLLECTION = "create-collection"
    SNAPSHOT = "snapshot"
    DESCRIBE = "describe"  # its denials are audited (an allowed describe is not)
    LIST = "list-collections"  # rate-limited only
    CREATE_KEY = "create-key"
    REVOKE_KEY = "revoke-key"
    RATE_SUMMARY = "rate-limit-summary"  # refusals of a 429 streak that were not audited


class Decision:
    """Audit log decisions."""

    ALLOW = "allow"
    DENY_SCOPE = "deny:scope"
    DENY_ROLE = "deny:role"
    DENY_RATE = "deny:rate-limit"
    DENY_TOP_K = "deny:top-k-cap"
    DENY_BATCH = "deny:batch-size"
    DENY_VECTOR = "deny:vector-queries"
    DENY_BUDGET = "deny:query-budget"
    DENY_SUSPENDED = "deny:suspended"
    ALERT_PROBING = "alert:probing"


class GatewayLimits:
    """Request limits of the gateway."""

    def __init__(
        self, *, max_body_bytes: int, max_batch: int, max_k: int, max_block_bytes: int = 0
    ) -> None:
        self.max_body_bytes, self.max_batch, self.max_k = max_body_bytes, max_batch, max_k
        self.max_block_bytes = max(max_block_bytes, max_body_bytes)  # CKKS block uploads


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization`` header of exactly ``Bearer <token>``, else None.

    Strict (RFC 6750 section 2.1): the scheme ``Bearer``, one space, a non-empty token of
    b64token characters and nothing else: no other scheme, no second space, no surrounding
    whitespace, no control characters, no empty token.
    """
    if authorization is None:
        return None
    match = _BEARER_HEADER.fullmatch(authorization)
    return match.group(1) if match else None


def _bearer(authorization: str | None, what: str, fix: str) -> str:
    token = bearer_token(authorization)
    if token is None:
        problem = f"missing {what}" if not authorization else "malformed Authorization header"
        raise ApiError(
            401,
            problem,
            expected=f"exactly 'Authorization: Bearer <{what}>' (one space, nothing around it)",
            fix=fix,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token


class GatewayAccess:
    """Authentication dependencies and authorisation checks of one gateway app.

    Args:
        credentials: The API keys of partners and nodes.
        audit: The audit log that records every denial.
        rate: The per-key rate limiter.
        admin_token: The operator's admin token.
    """

    def __init__(
        self,
        *,
        credentials: CredentialStore,
        audit: AuditLog,
        rate: RateLimiter,
        admin_token: str,
    ) -> None:
        self._credentials = credentials
        self._audit = audit
        self._rate = rate
        self._admin_secret = admin_token.encode()

    def authenticate(self, authorization: str | None) -> Credential:
        """The credential of the ``Authorization`` header's API key (else a 401)."""
        token = _bearer(
            authorization, "API key", "send the key you were given (fedembed partner create)"
        )
        credential = self._credentials.authenticate(token)
        if credential is None:
            raise ApiError(
                401,
                "unknown, malformed or revoked API key",
                expected="a current key issued by the consortium",
                fix="ask the operator for a new key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return credential

    def check_admin(self, authorization: str | None) -> None:
        """Passes only when the ``Authorization`` header holds the admin token (else a 401)."""
        token = _bearer(authorization, "admin token", "use the operator's admin token")
        if not self._admin_secret or not hmac.compare_digest(token.encode(), self._admin_secret):
            raise ApiError(
                401,
                "wrong admin token",
                expected="FEDEMBED_INDEX_ADMIN_TOKEN",
                fix="use the operator's admin token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def deny(
        self, cred: Credential, action: str, collection: str, decision: str, err: ApiError
    ) -> None:
        """Appends the denial to the audit log, then raises ``err``."""
        self._record(cred, action, collection, decision, {"status": err.status})
        raise err

    def allowed(
        self, cred: Credential, action: str, collection: str, detail: dict[str, object]
    ) -> None:
        """Appends an allowed action of ``cred`` (its name joins ``detail``)."""
        self._record(cred, action, collection, Decision.ALLOW, detail)

    def allowed_write(
        self, cred: Credential, action: str, collection: str, ids: Sequence[str]
    ) -> None:
        """Appends an allowed upload or delete of ``ids`` BEFORE the write is carried out.

        The record (``items`` and ``ids_sha256``, the SHA-256 of the ids' canonical JSON:
        :func:`~secure_index.service.audit_record.ids_digest`) is durable when this
        returns; the route writes to the store next and acknowledges only after both. So
        every acknowledged write has its record, even across a crash; a record whose
        write then failed (the client got an error) shows an authorised attempt.
        """
        detail: dict[str, object] = {"items": len(ids), "ids_sha256": ids_digest(list(ids))}
        self.allowed(cred, action, collection, detail)

    def allowed_block_write(
        self,
        cred: Credential,
        action: str,
        collection: str,
        number: int,
        ids: Sequence[str] | None = None,
    ) -> None:
        """Appends an allowed CKKS block put (with its ``ids``) or delete BEFORE the write.

        As :meth:`allowed_write`: durable when this returns, so every acknowledged block
        write has its record (``block``, and for a put ``items`` and ``ids_sha256``).
        """
        detail: dict[str, object] = {"block": number}
        if ids is not None:
            detail |= {"items": len(ids), "ids_sha256": ids_digest(list(ids))}
        self.allowed(cred, action, collection, detail)

    def alert(
        self, cred: Credential, action: str, collection: str, detail: dict[str, object]
    ) -> None:
        """Appends an alert about ``cred`` (e.g. probing) without refusing anything."""
        self._record(cred, action, collection, Decision.ALERT_PROBING, detail)

    def refuse_suspended(self, cred: Credential, action: str, collection: str) -> None:
        """Denies (403, audited) a key suspended for probing; passes any other key."""
        if cred.suspended_at is not None:
            self.deny(
                cred,
                action,
                collection,
                Decision.DENY_SUSPENDED,
                ApiError(
                    403,
                    "key suspended for probing",
                    expected=f"a key in good standing (suspended at {cred.suspended_at})",
                    fix="ask the operator to review and resume it: "
                    f"fedembed partner resume {cred.key_id}",
                ),
            )

    def _record(
        self,
        cred: Credential,
        action: str,
        collection: str,
        decision: str,
        detail: dict[str, object],
    ) -> None:
        self._audit.append(
            actor=cred.key_id,
            role=str(cred.role),
            action=action,
            collection=collection,
            decision=decision,
            detail={"name": cred.name, **detail},
        )

    def throttle(self, cred: Credential, action: str, collection: str = "*") -> None:
        """Takes one rate token of ``cred``: a 429 when none is left (see :meth:`authorise`).

        :meth:`authorise` starts with it; a route with no role or scope to check (a key's
        list of its collections) calls it alone, so every request of an authenticated key
        spends its rate.
        """
        verdict = self._rate.check(
            cred.key_id, rate_per_minute=cred.rate_per_minute, burst=cred.burst
        )
        if not verdict.allowed:
            retry = max(1, math.ceil(verdict.wait))
            err = ApiError(
                429,
                f"rate limit of {cred.rate_per_minute}/min (burst {cred.burst}) exceeded",
                expected="fewer requests",
                fix=f"retry after {retry} s",
                headers={"Retry-After": str(retry)},
            )
            if verdict.refusals == 1:
                self.deny(cred, action, collection, Decision.DENY_RATE, err)
            raise err
        if verdict.refusals > 1:
            detail: dict[str, object] = {"status": 429, "unaudited_refusals": verdict.refusals - 1}
            self._record(cred, Action.RATE_SUMMARY, "*", Decision.DENY_RATE, detail)

    def authorise(
        self, cred: Credential, role: CredentialRole | None, action: str, collection: str
    ) -> None:
        """Checks the key's rate limit, then its role (``None``: any) and scope; denies a failure.

        Every request of an authenticated key takes a rate token first, denied or not, so
        a flood of out-of-role or out-of-scope requests turns into 429s within the key's
        rate. Of a streak of 429s only the first is audited; when the key next passes
        the limiter, one ``rate-limit-summary`` record counts the refusals that were not
        audited. So a flood writes a bounded number of audit records (burst plus rate of
        403s, one 429, one summary), not one fsync'ed record per request.
        """
        self.throttle(cred, action, collection)
        if role is not None and cred.role is not role:
            self.deny(
                cred,
                action,
                collection,
                Decision.DENY_ROLE,
                ApiError(
                    403,
                    f"a {cred.role} key cannot {action}",
                    expected=f"a {role} key",
                    fix=f"use the {role} key issued to you",
                ),
            )
        if not cred.allows(collection):
            self.deny(
                cred,
                action,
                collection,
                Decision.DENY_SCOPE,
                ApiError(
                    403,
                    f"your key is not scoped to collection {collection!r}",
                    expected=f"one of {sorted(cred.scopes)}",
                    fix="ask the operator to extend the key's scopes",
                ),
            )
