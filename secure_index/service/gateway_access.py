"""Access control of the query gateway: keys, roles, scopes, rate limits and limits.

``GatewayAccess`` authenticates a caller (a partner or node API key, or the operator's
admin token, sent as ``Authorization: Bearer``; the FastAPI dependencies of
:mod:`secure_index.service.deps` call it) and authorises a request (role, collection
scope, per-key rate limit). A denial after authentication is appended to the
hash-chained audit log before the error is raised. ``Action`` and ``Decision`` are the
audit log's vocabulary; ``GatewayLimits`` holds the gateway's request limits.
"""

import hmac
import math

from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import Credential, CredentialRole, CredentialStore
from secure_index.service.http_errors import ApiError
from secure_index.service.rate_limit import RateLimiter

__all__ = ["ADMIN_ACTOR", "BEARER", "Action", "Decision", "GatewayAccess", "GatewayLimits"]

BEARER = "Bearer "
ADMIN_ACTOR = "admin"


class Action:
    """Audit log action names."""

    QUERY = "query"
    UPLOAD = "upload"
    DELETE = "delete"
    CREATE_COLLECTION = "create-collection"
    SNAPSHOT = "snapshot"
    CREATE_KEY = "create-key"
    REVOKE_KEY = "revoke-key"


class Decision:
    """Audit log decisions."""

    ALLOW = "allow"
    DENY_SCOPE = "deny:scope"
    DENY_ROLE = "deny:role"
    DENY_RATE = "deny:rate-limit"
    DENY_TOP_K = "deny:top-k-cap"
    DENY_BATCH = "deny:batch-size"


class GatewayLimits:
    """Request limits of the gateway."""

    def __init__(
        self, *, max_body_bytes: int, max_batch: int, max_k: int, max_block_bytes: int = 0
    ) -> None:
        self.max_body_bytes, self.max_batch, self.max_k = max_body_bytes, max_batch, max_k
        self.max_block_bytes = max(max_block_bytes, max_body_bytes)  # CKKS block uploads


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.startswith(BEARER):
        raise ApiError(
            401,
            "missing API key",
            expected="an 'Authorization: Bearer <key>' header",
            fix="send the key you were given (fedembed partner create)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return authorization[len(BEARER) :]


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
        credential = self._credentials.authenticate(_bearer(authorization))
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
        if not hmac.compare_digest(_bearer(authorization).encode(), self._admin_secret):
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

    def authorise(
        self, cred: Credential, role: CredentialRole, action: str, collection: str
    ) -> None:
        """Checks the key's role, its scope and its rate limit; a failure is denied."""
        if cred.role is not role:
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
        wait = self._rate.acquire(
            cred.key_id, rate_per_minute=cred.rate_per_minute, burst=cred.burst
        )
        if wait > 0:
            retry = max(1, math.ceil(wait))
            self.deny(
                cred,
                action,
                collection,
                Decision.DENY_RATE,
                ApiError(
                    429,
                    f"rate limit of {cred.rate_per_minute}/min (burst {cred.burst}) exceeded",
                    expected="fewer requests",
                    fix=f"retry after {retry} s",
                    headers={"Retry-After": str(retry)},
                ),
            )
