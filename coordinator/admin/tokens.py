"""Admin API tokens: roles, issued once, stored hashed, scoped, revocable.

The roles and a token's public record; the store that issues, hashes, revokes and
authenticates tokens is :mod:`coordinator.admin.token_store`.
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
