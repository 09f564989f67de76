"""``/v1/partners``: create, list and revoke the query gateway's partner keys.

Creating and revoking need the admin role; any role may list. The admin API forwards
each request to the gateway's admin API (:mod:`coordinator.admin.partners`): the
gateway keeps the keys (hashed) and its own audit log; the admin API records every
creation and revocation in its trail (key id, name, scope count, release: never the
token). A new key's token is in the answer to ``POST /v1/partners`` and nowhere else.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from coordinator.admin.deps import AdminDep, PartnersDep, ReaderDep, TrailDep
from coordinator.admin.partners import PartnerGrant, PartnerKeys
from coordinator.admin.settings import AdminSettings
from index_client.answers import ApiKey
from index_client.names import NAME_PATTERN

__all__ = [
    "PartnerCreate",
    "PartnerCreated",
    "PartnerKeyOut",
    "PartnerList",
    "install",
    "router",
]

router = APIRouter(prefix="/v1/partners", tags=["partners"])

KeyId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{12}$", description="The key's public id (12 hex characters).")
]
ScopeName = Annotated[str, Field(pattern=r"^(\*|" + NAME_PATTERN.strip("^$") + r")$")]


class PartnerCreate(BaseModel):
    """A partner key to issue; limits left out take the gateway's defaults."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="The partner's name, e.g. insurer-x.")
    scopes: list[ScopeName] = Field(
        min_length=1, max_length=100, description="Collection names the key may query ('*': all)."
    )
    top_k_cap: int | None = Field(default=None, ge=1, le=10_000, description="Largest k.")
    rate_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    burst: int | None = Field(default=None, ge=1, le=1_000_000)
    vector_queries: bool | None = Field(
        default=None, description="Allow raw query vectors (risky: basis-vector probes)."
    )
    score_release: Literal["rank", "coarse", "exact"] | None = Field(
        default=None, description="rank (default), coarse (rounded scores), exact (risky)."
    )
    query_budget: int | None = Field(default=None, ge=1, description="Answered queries/window.")
    budget_window_s: int | None = Field(default=None, ge=1, description="The window (seconds).")


class PartnerKeyOut(BaseModel):
    """A partner key's public record (never its token)."""

    key_id: str
    name: str
    scopes: list[str]
    top_k_cap: int
    rate_per_minute: int
    burst: int
    vector_queries: bool
    score_release: str
    query_budget: int
    budget_window_s: int
    created_at: str
    revoked_at: str | None
    suspended_at: str | None

    @classmethod
    def of(cls, key: ApiKey) -> PartnerKeyOut:
        """The record of ``key``."""
        return cls.model_validate(key, from_attributes=True)


class PartnerCreated(BaseModel):
    """A new partner key and its token (shown this once; give it to the partner)."""

    key: PartnerKeyOut
    token: str = Field(description="The partner sends `Authorization: Bearer <token>`.")


class PartnerList(BaseModel):
    """The gateway's partner keys, in order of issue."""

    partners: list[PartnerKeyOut]


def install(app: FastAPI, settings: AdminSettings) -> None:
    """Put the partner keys' service (the gateway named in ``settings``) on ``app.state``."""
    app.state.partners = PartnerKeys(settings)


@router.post("", status_code=201, response_model=PartnerCreated)
def create_partner(
    body: PartnerCreate, caller: AdminDep, partners: PartnersDep, trail: TrailDep
) -> PartnerCreated:
    """Issue a partner key at the gateway; its token is in this answer only."""
    issued = partners.create(PartnerGrant(**body.model_dump() | {"scopes": tuple(body.scopes)}))
    key = issued.key
    trail.record(
        caller,
        "partner.create",
        key.key_id,
        detail={
            "name": key.name,
            "scopes": len(key.scopes),
            "score_release": key.score_release,
            "vector_queries": key.vector_queries,
            "top_k_cap": key.top_k_cap,
        },
    )
    return PartnerCreated(key=PartnerKeyOut.of(key), token=issued.token)


@router.get("", response_model=PartnerList)
def list_partners(
    caller: ReaderDep,
    partners: PartnersDep,
    include_revoked: Annotated[
        bool, Query(description="Also list revoked keys (default: yes).")
    ] = True,
) -> PartnerList:
    """The gateway's partner keys with their limits and states (never a token)."""
    keys = partners.list(include_revoked=include_revoked)
    return PartnerList(partners=[PartnerKeyOut.of(k) for k in keys])


@router.delete("/{key_id}", response_model=PartnerKeyOut)
def revoke_partner(
    key_id: KeyId, caller: AdminDep, partners: PartnersDep, trail: TrailDep
) -> PartnerKeyOut:
    """Revoke a partner key at the gateway: its next query is refused (401)."""
    key = partners.revoke(key_id)
    trail.record(caller, "partner.revoke", key.key_id, detail={"name": key.name})
    return PartnerKeyOut.of(key)
