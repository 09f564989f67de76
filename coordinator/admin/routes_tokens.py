"""``/v1/tokens``: issue, list and revoke admin API tokens (the admin role only).

A new token's secret is in the answer to ``POST /v1/tokens`` and nowhere else (the
store keeps its SHA-256). Every issue and revocation is recorded in the audit trail
before the answer is sent.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

from coordinator.admin.deps import AdminDep, TokenStoreDep, TrailDep
from coordinator.admin.settings import AdminSettings
from coordinator.admin.token_store import TOKENS_FILE, AdminTokenStore
from coordinator.admin.tokens import AdminRole, AdminToken
from index_client.names import NAME_PATTERN

__all__ = ["TokenCreate", "TokenCreated", "TokenList", "TokenOut", "install", "router"]

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])

TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="The token's public id.")]


class TokenCreate(BaseModel):
    """A token to issue."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Who or what holds the token.")
    role: AdminRole = Field(description="admin (everything), operator (runs, models), auditor.")


class TokenOut(BaseModel):
    """A token's public record (never its secret, never its digest)."""

    token_id: str
    name: str
    role: AdminRole
    created: str
    revoked: str | None

    @classmethod
    def of(cls, token: AdminToken) -> TokenOut:
        """The record of ``token``."""
        return cls.model_validate(token, from_attributes=True)


class TokenCreated(BaseModel):
    """A new token and its secret (shown this once)."""

    token: TokenOut
    secret: str = Field(description="Send as `Authorization: Bearer <secret>`; shown once.")


class TokenList(BaseModel):
    """Every token, revoked ones included."""

    tokens: list[TokenOut]


def install(app: FastAPI, settings: AdminSettings) -> None:
    """Use the core's token store (or open one in the home's state folder)."""
    store = getattr(app.state.admin, "tokens", None)
    if not isinstance(store, AdminTokenStore):
        store = AdminTokenStore(settings.consortium.state / TOKENS_FILE)
    app.state.tokens = store


@router.post("", status_code=201, response_model=TokenCreated)
def create_token(
    body: TokenCreate, caller: AdminDep, store: TokenStoreDep, trail: TrailDep
) -> TokenCreated:
    """Issue a token of a role; its secret is in this answer only."""
    token, secret = store.create(body.name, body.role)
    trail.record(
        caller, "token.create", token.token_id, detail={"name": token.name, "role": token.role}
    )
    return TokenCreated(token=TokenOut.of(token), secret=secret)


@router.get("", response_model=TokenList)
def list_tokens(caller: AdminDep, store: TokenStoreDep) -> TokenList:
    """Every token, in order of issue, with its revocation time if revoked."""
    return TokenList(tokens=[TokenOut.of(t) for t in store.list()])


@router.delete("/{token_id}", response_model=TokenOut)
def revoke_token(
    token_id: TokenId, caller: AdminDep, store: TokenStoreDep, trail: TrailDep
) -> TokenOut:
    """Revoke a token at once (its next request is a 401); revoking twice changes nothing."""
    token = store.revoke(token_id)
    trail.record(caller, "token.revoke", token.token_id, detail={"name": token.name})
    return TokenOut.of(token)
