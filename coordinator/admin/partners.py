"""Partner keys of the query gateway, managed through the gateway's own admin API.

The admin API holds no partner key itself: :class:`PartnerKeys` calls the gateway
(:class:`~index_client.admin_client.AdminClient` with ``FEDEMBED_ADMIN_GATEWAY_URL``,
``FEDEMBED_ADMIN_GATEWAY_CA`` and ``FEDEMBED_INDEX_ADMIN_TOKEN``), which stores each key
hashed and appends every change to its own audit log. A new key's token is returned by
:meth:`PartnerKeys.create` once, to be shown in the answer to the caller; it is never
stored, logged nor put in the admin trail.

A partner key carries its scope (collection names, ``*`` for all), its top-k cap, rate
limit, query budget per window, score release (``rank``, ``coarse``, ``exact``) and
whether it may send raw query vectors; what is left out takes the gateway's defaults.

Errors: a gateway that is not configured is a 503 whose fix names the settings; what
the gateway refuses is passed on with the gateway's own problem, expected and fix
(404 stays 404, 409 stays 409, 413/422 become 422); a gateway that refuses the admin
API's token, answers 5xx or cannot be reached is a 503.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.admin.errors import (
    AdminConflictError,
    AdminError,
    AdminInvalidError,
    AdminNotFoundError,
    AdminUnavailableError,
)
from coordinator.admin.settings import AdminSettings
from index_client.admin_client import AdminClient
from index_client.answers import ApiKey, IssuedKey
from index_client.errors import GatewayError

__all__ = ["PARTNER_ROLE", "PartnerGrant", "PartnerKeys", "gateway_error"]

logger = logging.getLogger(__name__)

PARTNER_ROLE = "partner"
GATEWAY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PartnerGrant:
    """What a new partner key may do (``None``: the gateway's default)."""

    name: str
    scopes: tuple[str, ...]
    top_k_cap: int | None = None
    rate_per_minute: int | None = None
    burst: int | None = None
    vector_queries: bool | None = None
    score_release: str | None = None
    query_budget: int | None = None
    budget_window_s: int | None = None


def gateway_error(exc: GatewayError, action: str) -> AdminError:
    """The admin API's error for what the gateway answered to ``action``.

    The gateway's problem, expected and fix are kept; only the status is mapped.
    """
    problem = f"the query gateway refused to {action}: {exc.problem}"
    if exc.status in (404, 405):
        return AdminNotFoundError(problem, expected=exc.expected, fix=exc.fix)
    if exc.status == 409:
        return AdminConflictError(problem, expected=exc.expected, fix=exc.fix)
    if exc.status in (413, 422):
        return AdminInvalidError(problem, expected=exc.expected, fix=exc.fix)
    if exc.status == 401:
        return AdminUnavailableError(
            f"the query gateway refused the admin API's token ({exc.problem})",
            expected="FEDEMBED_INDEX_ADMIN_TOKEN of the admin API equal to the gateway's",
            fix="start the admin API with the gateway's FEDEMBED_INDEX_ADMIN_TOKEN",
        )
    if exc.status == 0:
        return AdminUnavailableError(
            f"the query gateway cannot be reached: {exc.problem}",
            expected=exc.expected or "a running gateway at FEDEMBED_ADMIN_GATEWAY_URL",
            fix=exc.fix or "start the gateway or correct FEDEMBED_ADMIN_GATEWAY_URL",
        )
    return AdminUnavailableError(problem, expected=exc.expected, fix=exc.fix)


class PartnerKeys:
    """Create, list and revoke partner keys at the gateway configured in ``settings``."""

    def __init__(self, settings: AdminSettings) -> None:
        self._url = settings.gateway_url
        self._ca = settings.gateway_ca
        self._token = settings.gateway_admin_token

    @property
    def configured(self) -> bool:
        """Whether the gateway's URL and admin token are both set."""
        return bool(self._url) and self._token is not None

    def _client(self) -> AdminClient:
        if not self._url or self._token is None:
            missing = [
                name
                for name, value in (
                    ("FEDEMBED_ADMIN_GATEWAY_URL", self._url),
                    ("FEDEMBED_INDEX_ADMIN_TOKEN", self._token),
                )
                if not value
            ]
            raise AdminUnavailableError(
                "the admin API has no query gateway configured (" + ", ".join(missing) + " unset)",
                expected="FEDEMBED_ADMIN_GATEWAY_URL (e.g. https://gateway.example:8200) and "
                "FEDEMBED_INDEX_ADMIN_TOKEN set when the admin API starts",
                fix="set FEDEMBED_ADMIN_GATEWAY_URL, FEDEMBED_INDEX_ADMIN_TOKEN (and "
                "FEDEMBED_ADMIN_GATEWAY_CA for an https gateway) and restart the admin API",
            )
        return AdminClient(
            self._url,
            self._token.get_secret_value(),
            timeout_s=GATEWAY_TIMEOUT_S,
            verify=self._ca if self._ca is not None else True,
        )

    def create(self, grant: PartnerGrant) -> IssuedKey:
        """Issue a partner key at the gateway; its token is in the answer only.

        Raises:
            AdminError: The gateway is not configured, unreachable, or refused the key.
        """
        try:
            with self._client() as gateway:
                issued = gateway.issue_credential(
                    PARTNER_ROLE,
                    grant.name,
                    grant.scopes,
                    top_k_cap=grant.top_k_cap,
                    rate_per_minute=grant.rate_per_minute,
                    burst=grant.burst,
                    vector_queries=grant.vector_queries,
                    score_release=grant.score_release,
                    query_budget=grant.query_budget,
                    budget_window_s=grant.budget_window_s,
                )
        except GatewayError as exc:
            raise gateway_error(exc, "issue the partner key") from None
        logger.info("partners: issued key %s for %s", issued.key.key_id, issued.key.name)
        return issued

    def list(self, *, include_revoked: bool = True) -> Sequence[ApiKey]:
        """The gateway's partner keys (never a token), in order of issue.

        Raises:
            AdminError: The gateway is not configured, unreachable, or refused.
        """
        try:
            with self._client() as gateway:
                keys = gateway.credentials()
        except GatewayError as exc:
            raise gateway_error(exc, "list its keys") from None
        return [
            k for k in keys if k.role == PARTNER_ROLE and (include_revoked or k.revoked_at is None)
        ]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a partner key at the gateway; it is refused from its next request.

        Revoking a revoked key changes nothing. A node key is not a partner key (404).

        Raises:
            AdminError: No such partner key, or the gateway is not configured,
                unreachable, or refused.
        """
        try:
            with self._client() as gateway:
                known = {k.key_id: k for k in gateway.credentials()}
                key = known.get(key_id)
                if key is None or key.role != PARTNER_ROLE:
                    raise AdminNotFoundError(
                        f"no partner key {key_id!r} at the query gateway",
                        expected="a key_id listed by GET /v1/partners",
                        fix="list the partner keys and copy the key_id",
                    )
                revoked = gateway.revoke_credential(key_id)
        except GatewayError as exc:
            raise gateway_error(exc, "revoke the partner key") from None
        logger.info("partners: revoked key %s of %s", revoked.key_id, revoked.name)
        return revoked
