"""Admin API tokens: roles, issued once, stored hashed, scoped, revocable.

(Skeleton: the role names are fixed here; the token store is filled in below.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["AdminRole", "AdminToken"]


class AdminRole(enum.StrEnum):
    """What a token may do."""

    ADMIN = "admin"  # everything: members, tokens, partners, policy
    OPERATOR = "operator"  # runs and models
    AUDITOR = "auditor"  # read only


@dataclass(frozen=True)
class AdminToken:
    """A token's public record (never the secret, never its hash)."""

    token_id: str
    name: str
    role: AdminRole
    created: str
    revoked: str | None = None
