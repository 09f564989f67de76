"""The FastAPI dependencies of the gateway and the store: their parts and who is calling.

Each app keeps its parts on ``app.state`` (:class:`GatewayParts` as ``state.gateway``,
:class:`StoreParts` as ``state.store``); the routers take them through the ``Annotated``
dependencies below, never from a closure, so a test (or an operator's wrapper) replaces
one with ``app.dependency_overrides[get_store] = lambda: other_backend``.

Gateway: :data:`StoreDep`, :data:`CkksDep` (and :data:`OptionalCkksDep`),
:data:`EmbedderDep`, :data:`CredentialsDep`, :data:`AuditDep`, :data:`RateDep`,
:data:`LimitsDep`, :data:`BudgetDep` and :data:`ProbesDep` (the query policy's budget
and probe detector), :data:`AccessDep` (built from the credentials, audit log and rate
limiter in use), :data:`CallerDep` (the caller's credential, else 401) and
:func:`require_admin` (the admin token, else 401). Store: :data:`IndexDep`,
:data:`CkksStoreDep` and :func:`require_gateway` (the store token, else 401).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, Request

from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.index_store import IndexStore
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import Credential, CredentialStore
from secure_index.service.gateway_access import GatewayAccess, GatewayLimits, bearer_token
from secure_index.service.gateway_ckks import CkksGatewaySearch
from secure_index.service.http_errors import ApiError
from secure_index.service.probe_detector import ProbeDetector
from secure_index.service.promoted_adapter import PromotedAdapters
from secure_index.service.query_budget import QueryBudget
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.rate_limit import RateLimiter
from secure_index.service.store_backend import StoreBackend

__all__ = [
    "AccessDep",
    "AuditDep",
    "AuthorizationHeader",
    "BudgetDep",
    "CallerDep",
    "CkksDep",
    "CkksStoreDep",
    "CredentialsDep",
    "EmbedderDep",
    "GatewayParts",
    "GatewayPartsDep",
    "IndexDep",
    "LimitsDep",
    "OptionalCkksDep",
    "ProbeGuard",
    "ProbesDep",
    "RateDep",
    "StoreDep",
    "StoreParts",
    "StorePartsDep",
    "caller",
    "check_store_token",
    "gateway_header_check",
    "gateway_parts",
    "get_access",
    "get_audit",
    "get_budget",
    "get_ckks",
    "get_ckks_store",
    "get_credentials",
    "get_embedder",
    "get_index",
    "get_limits",
    "get_optional_ckks",
    "get_probes",
    "get_rate",
    "get_store",
    "require_admin",
    "require_gateway",
    "store_header_check",
    "store_parts",
]

AuthorizationHeader = Annotated[str | None, Header()]
ADMIN_PREFIX = "/v1/admin"  # every admin route is under it (index_client.routes)


@dataclass(frozen=True)
class GatewayParts:
    """What the gateway app serves with (``app.state.gateway``)."""

    store: StoreBackend
    credentials: CredentialStore
    audit: AuditLog
    embedder: QueryEmbedder
    rate: RateLimiter
    limits: GatewayLimits
    admin_token: str = field(repr=False)
    ckks: CkksGatewaySearch | None = None
    suspend_on_probing: bool = True
    probes: ProbeDetector = field(default_factory=ProbeDetector)
    budget: QueryBudget = field(init=False)  # in the credentials file, so always theirs
    adapter_dir: Path | None = None  # where promoted adapters are kept (None: memory only)
    adapters: PromotedAdapters = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", QueryBudget(self.credentials))
        object.__setattr__(self, "adapters", PromotedAdapters(self.embedder, self.adapter_dir))


@dataclass(frozen=True)
class ProbeGuard:
    """The probe detector and whether an alert suspends the key."""

    detector: ProbeDetector
    suspend: bool


@dataclass(frozen=True)
class StoreParts:
    """What the store app serves with (``app.state.store``)."""

    index: IndexStore
    token: str = field(repr=False)
    ckks: CkksCollections | None = None


# --- gateway ------------------------------------------------------------------------------


def gateway_parts(request: Request) -> GatewayParts:
    """The gateway's parts (``app.state.gateway``)."""
    parts: GatewayParts = request.app.state.gateway
    return parts


GatewayPartsDep = Annotated[GatewayParts, Depends(gateway_parts)]


def get_store(parts: GatewayPartsDep) -> StoreBackend:
    """The index store (in-process or remote) behind the gateway."""
    return parts.store


def get_optional_ckks(parts: GatewayPartsDep) -> CkksGatewaySearch | None:
    """The CKKS search, or ``None`` when the gateway holds no CKKS key."""
    return parts.ckks


def get_ckks(
    ckks: Annotated[CkksGatewaySearch | None, Depends(get_optional_ckks)],
) -> CkksGatewaySearch:
    """The CKKS search (a 404 when the gateway holds no CKKS key)."""
    if ckks is None:
        raise ApiError(
            404,
            "this gateway has no CKKS collections",
            expected="a gateway started with FEDEMBED_INDEX_CKKS_KEY_FILE",
            fix="use an at-rest or DCPE collection, or ask the operator",
        )
    return ckks


def get_embedder(parts: GatewayPartsDep) -> QueryEmbedder:
    """The query embedder (text to vector, DCPE encryption of queries)."""
    return parts.embedder


def get_credentials(parts: GatewayPartsDep) -> CredentialStore:
    """The partner and node keys."""
    return parts.credentials


def get_audit(parts: GatewayPartsDep) -> AuditLog:
    """The hash-chained audit log."""
    return parts.audit


def get_rate(parts: GatewayPartsDep) -> RateLimiter:
    """The per-key rate limiter."""
    return parts.rate


def get_limits(parts: GatewayPartsDep) -> GatewayLimits:
    """The gateway's request limits."""
    return parts.limits


def get_budget(parts: GatewayPartsDep) -> QueryBudget:
    """The per-key query budgets (persisted in the credentials file)."""
    return parts.budget


def get_probes(parts: GatewayPartsDep) -> ProbeGuard:
    """The probe detector and the gateway's suspend-on-probing setting."""
    return ProbeGuard(parts.probes, parts.suspend_on_probing)


StoreDep = Annotated[StoreBackend, Depends(get_store)]
OptionalCkksDep = Annotated[CkksGatewaySearch | None, Depends(get_optional_ckks)]
CkksDep = Annotated[CkksGatewaySearch, Depends(get_ckks)]
EmbedderDep = Annotated[QueryEmbedder, Depends(get_embedder)]
CredentialsDep = Annotated[CredentialStore, Depends(get_credentials)]
AuditDep = Annotated[AuditLog, Depends(get_audit)]
RateDep = Annotated[RateLimiter, Depends(get_rate)]
LimitsDep = Annotated[GatewayLimits, Depends(get_limits)]
BudgetDep = Annotated[QueryBudget, Depends(get_budget)]
ProbesDep = Annotated[ProbeGuard, Depends(get_probes)]


def get_access(
    parts: GatewayPartsDep, credentials: CredentialsDep, audit: AuditDep, rate: RateDep
) -> GatewayAccess:
    """Authentication and authorisation over the keys, audit log and limiter in use."""
    return GatewayAccess(
        credentials=credentials, audit=audit, rate=rate, admin_token=parts.admin_token
    )


AccessDep = Annotated[GatewayAccess, Depends(get_access)]


def caller(access: AccessDep, authorization: AuthorizationHeader = None) -> Credential:
    """The credential of the caller's API key (else 401)."""
    return access.authenticate(authorization)


def require_admin(access: AccessDep, authorization: AuthorizationHeader = None) -> None:
    """Passes only with the operator's admin token (else 401)."""
    access.check_admin(authorization)


CallerDep = Annotated[Credential, Depends(caller)]


def gateway_header_check(parts: GatewayParts) -> Callable[[str, str | None], None]:
    """The header check of a gateway request, run before its body is read.

    :class:`~secure_index.service.auth_first.AuthenticateFirst` calls it: the admin
    token on admin paths, a current partner or node key on every other path (else a 401).
    """
    access = GatewayAccess(
        credentials=parts.credentials,
        audit=parts.audit,
        rate=parts.rate,
        admin_token=parts.admin_token,
    )

    def check(path: str, authorization: str | None) -> None:
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            access.check_admin(authorization)
        else:
            access.authenticate(authorization)

    return check


# --- store --------------------------------------------------------------------------------


def store_parts(request: Request) -> StoreParts:
    """The store's parts (``app.state.store``)."""
    parts: StoreParts = request.app.state.store
    return parts


StorePartsDep = Annotated[StoreParts, Depends(store_parts)]


def get_index(parts: StorePartsDep) -> IndexStore:
    """The encrypted index (at-rest and DCPE collections)."""
    return parts.index


def get_ckks_store(parts: StorePartsDep) -> CkksCollections:
    """The CKKS collections (a 404 when the store has none)."""
    if parts.ckks is None:
        raise ApiError(
            404,
            "this store has no CKKS collections",
            expected="a store with a CKKS folder",
            fix="use the at-rest and DCPE routes",
        )
    return parts.ckks


IndexDep = Annotated[IndexStore, Depends(get_index)]
CkksStoreDep = Annotated[CkksCollections, Depends(get_ckks_store)]


def check_store_token(token: str, authorization: str | None) -> None:
    """Passes only when the header is exactly ``Bearer <token>`` (else a 401).

    An empty configured token matches nothing (the settings refuse one shorter than 32
    characters; this is the second line of defence).
    """
    given = bearer_token(authorization)
    if given is None or not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(
            401,
            "missing or wrong store token",
            expected="Authorization: Bearer <FEDEMBED_INDEX_STORE_TOKEN>",
            fix="only the query gateway may call the store",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_gateway(parts: StorePartsDep, authorization: AuthorizationHeader = None) -> None:
    """Passes only with the store token the gateway holds (else 401)."""
    check_store_token(parts.token, authorization)


def store_header_check(parts: StoreParts) -> Callable[[str, str | None], None]:
    """The header check of every non-public store path: the store token (else a 401)."""

    def check(_path: str, authorization: str | None) -> None:
        check_store_token(parts.token, authorization)

    return check
