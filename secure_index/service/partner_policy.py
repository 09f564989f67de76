"""The gateway's enforcement of a partner key's query policy, step by step.

A partner that reads back full-precision scores can rebuild every stored vector: 384
basis-vector queries give each document's coordinates exactly, and ``dim`` texts give
them by least squares (:mod:`secure_index.service.score_release`). The query route
applies, in this order, after authentication, scope and rate limit:

1. :func:`refuse_vector_query`: raw vectors only with the key's ``vector_queries``
   grant (403, audited ``deny:vector-queries``); text queries always pass.
2. :func:`spend_query`: one unit of the key's budget for the window (429 with
   ``Retry-After`` when spent, audited ``deny:query-budget``); refunded with
   :meth:`QueryBudget.refund` when the query is not answered after all.
3. :func:`watch_for_probing`: the query vector the gateway computed joins the key's
   window in the probe detector; an alert is logged (no vectors) and audited
   ``alert:probing`` and, when the gateway suspends on probing, the key is suspended
   and this query refused (403 "key suspended for probing").

The answer then carries what the key's ``score_release`` allows.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from secure_index.service.credentials import Credential, CredentialStore
from secure_index.service.deps import ProbeGuard
from secure_index.service.gateway_access import Action, Decision, GatewayAccess
from secure_index.service.http_errors import ApiError
from secure_index.service.query_budget import QueryBudget

__all__ = ["refuse_vector_query", "spend_query", "watch_for_probing"]

logger = logging.getLogger(__name__)


def refuse_vector_query(access: GatewayAccess, cred: Credential, collection: str) -> None:
    """Denies a raw vector query of a key without the ``vector_queries`` grant."""
    if not cred.vector_queries:
        access.deny(
            cred,
            Action.QUERY,
            collection,
            Decision.DENY_VECTOR,
            ApiError(
                403,
                "your key may not send query vectors",
                expected='a text query: {"text": "..."}',
                fix="send the query as text, or ask the operator for a key with vector "
                "queries (fedembed partner create --allow-vector-queries)",
            ),
        )


def spend_query(
    access: GatewayAccess, budget: QueryBudget, cred: Credential, collection: str
) -> int:
    """Spends one query of the key's budget (else a 429, audited); returns units spent."""
    charge = budget.spend(cred.key_id, budget=cred.query_budget, window_s=cred.budget_window_s)
    if not charge.allowed:
        retry = max(1, math.ceil(charge.retry_after_s))
        access.deny(
            cred,
            Action.QUERY,
            collection,
            Decision.DENY_BUDGET,
            ApiError(
                429,
                f"query budget of {cred.query_budget} per {cred.budget_window_s} s is spent",
                expected=f"at most {cred.query_budget} answered queries per window",
                fix=f"retry after {retry} s, or ask the operator for a larger budget",
                headers={"Retry-After": str(retry)},
            ),
        )
    return charge.spent


def watch_for_probing(
    access: GatewayAccess,
    probes: ProbeGuard,
    credentials: CredentialStore,
    cred: Credential,
    collection: str,
    vector: np.ndarray,
) -> None:
    """Feeds the query vector to the probe detector; alerts, and suspends when set to.

    Raises:
        ApiError: 403 "key suspended for probing" when the alert suspended the key.
    """
    alert = probes.detector.observe(cred.key_id, vector)
    if alert is None:
        return
    access.alert(
        cred,
        Action.QUERY,
        collection,
        {
            "signal": alert.signal,
            "statistic": round(alert.statistic, 4),
            "window": alert.window,
            "suspended": probes.suspend,
        },
    )
    if probes.suspend:
        suspended = credentials.suspend(cred.key_id)
        access.refuse_suspended(suspended, Action.QUERY, collection)
