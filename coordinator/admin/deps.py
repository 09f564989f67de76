"""The admin API's FastAPI dependencies: its parts and who is calling, as ``Annotated`` types.

Core parts live on ``app.state.admin`` (:class:`AdminParts`); each domain's service lives
on ``app.state.<domain>`` (set by its router module's ``install``) and is reached through
a module-level dependency below (``get_<domain>``, made by :func:`state_service`), never
one made per request, so a test replaces one with ``app.dependency_overrides[...]``.

Callers: :data:`ReaderDep` (any valid token: admin, operator, auditor), :data:`OperatorDep`
(admin or operator), :data:`AdminDep` (admin only). A missing, unknown or revoked token is
a 401; a valid token of too small a role is a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar, cast

from fastapi import Depends, Header, Request

from coordinator.admin.audit_jobs import AuditJobs
from coordinator.admin.audit_reports import AuditReports
from coordinator.admin.budgets import Budgets
from coordinator.admin.errors import AdminError
from coordinator.admin.members import MemberRoster
from coordinator.admin.model_registry import ModelRegistry
from coordinator.admin.partners import PartnerKeys
from coordinator.admin.runs import RunManager
from coordinator.admin.settings import AdminSettings
from coordinator.admin.token_store import AdminTokenStore
from coordinator.admin.tokens import AdminRole, AdminToken

__all__ = [
    "AdminDep",
    "AdminParts",
    "AuditJobsDep",
    "AuditReportsDep",
    "AuthError",
    "BudgetsDep",
    "MembersDep",
    "ModelsDep",
    "OperatorDep",
    "PartnersDep",
    "PartsDep",
    "ReaderDep",
    "RunsDep",
    "SettingsDep",
    "TokenAuthenticator",
    "TokenStoreDep",
    "Trail",
    "TrailDep",
    "require_role",
    "state_service",
]

T = TypeVar("T")


class TokenAuthenticator(Protocol):
    """Finds the live token a bearer secret belongs to."""

    def authenticate(self, secret: str) -> AdminToken | None:
        """The token's record, or None (unknown, malformed or revoked)."""


class Trail(Protocol):
    """The admin audit trail: every state change, hash-chained."""

    def record(
        self,
        actor: AdminToken,
        action: str,
        target: str,
        *,
        decision: str = "ok",
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """Append one record (durable before the action is acknowledged)."""


@dataclass
class AdminParts:
    """The admin API's core parts."""

    settings: AdminSettings
    tokens: TokenAuthenticator
    trail: Trail


class AuthError(AdminError):
    """No valid token (401) or a token whose role may not do this (403)."""

    def __init__(self, problem: str, *, status: int, expected: str, fix: str) -> None:
        super().__init__(problem, expected=expected, fix=fix)
        self.status = status


def get_parts(request: Request) -> AdminParts:
    """The app's core parts."""
    parts: AdminParts = request.app.state.admin
    return parts


PartsDep = Annotated[AdminParts, Depends(get_parts)]


def get_settings(parts: PartsDep) -> AdminSettings:
    """The settings the service started with."""
    return parts.settings


def get_trail(parts: PartsDep) -> Trail:
    """The audit trail."""
    return parts.trail


SettingsDep = Annotated[AdminSettings, Depends(get_settings)]
TrailDep = Annotated[Trail, Depends(get_trail)]


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def require_role(*roles: AdminRole) -> Callable[..., AdminToken]:
    """A dependency that admits a live token of one of ``roles``."""
    allowed = frozenset(roles)

    def dependency(
        parts: PartsDep, authorization: Annotated[str | None, Header()] = None
    ) -> AdminToken:
        secret = _bearer(authorization)
        token = parts.tokens.authenticate(secret) if secret else None
        if token is None:
            raise AuthError(
                "no valid admin API token",
                status=401,
                expected="an Authorization: Bearer <token> header with a live admin API token",
                fix="create one with `fedembed coordinator admin token create` and send it",
            )
        if token.role not in allowed:
            raise AuthError(
                f"the {token.role} role may not do this",
                status=403,
                expected="a token of role " + " or ".join(sorted(allowed)),
                fix="use a token of that role (an admin creates one)",
            )
        return token

    return dependency


ReaderDep = Annotated[
    AdminToken, Depends(require_role(AdminRole.ADMIN, AdminRole.OPERATOR, AdminRole.AUDITOR))
]
OperatorDep = Annotated[AdminToken, Depends(require_role(AdminRole.ADMIN, AdminRole.OPERATOR))]
AdminDep = Annotated[AdminToken, Depends(require_role(AdminRole.ADMIN))]

# --- domain services (each domain adds its dependency below) ------------------------


def state_service(attribute: str, kind: type[T]) -> Callable[[Request], T]:
    """A dependency that returns the service a domain put on ``app.state.<attribute>``.

    Args:
        attribute: The name the domain's ``install`` gave it.
        kind: Its type (for the type checker and the dependency's name).
    """

    def dependency(request: Request) -> T:
        return cast(T, getattr(request.app.state, attribute))

    dependency.__name__ = f"get_{attribute}"
    dependency.__doc__ = f"The {kind.__name__} on app.state.{attribute}."
    return dependency


get_token_store = state_service("tokens", AdminTokenStore)  # /v1/tokens
get_members = state_service("members", MemberRoster)  # /v1/members
get_runs = state_service("runs", RunManager)  # /v1/runs
get_models = state_service("models", ModelRegistry)  # /v1/models
get_budgets = state_service("budgets", Budgets)  # /v1/budgets: budgets and the planner
get_partners = state_service("partners", PartnerKeys)  # /v1/partners
get_audit_jobs = state_service("audit_jobs", AuditJobs)  # /v1/audit/jobs
get_audit_reports = state_service("audit_reports", AuditReports)  # /v1/audit/reports

TokenStoreDep = Annotated[AdminTokenStore, Depends(get_token_store)]
MembersDep = Annotated[MemberRoster, Depends(get_members)]
RunsDep = Annotated[RunManager, Depends(get_runs)]
ModelsDep = Annotated[ModelRegistry, Depends(get_models)]
BudgetsDep = Annotated[Budgets, Depends(get_budgets)]
PartnersDep = Annotated[PartnerKeys, Depends(get_partners)]
AuditJobsDep = Annotated[AuditJobs, Depends(get_audit_jobs)]
AuditReportsDep = Annotated[AuditReports, Depends(get_audit_reports)]
