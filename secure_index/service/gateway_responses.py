"""Response helpers of the query gateway: the error responses and response bodies.

``ERROR_RESPONSES`` documents the gateway's error statuses (all with an ``ErrorBody``)
in the OpenAPI schema; ``collection_info`` and ``credential_info`` turn the store's
collection statistics and a stored credential into their response models. A credential's
token is shown only when it has just been issued; key hashes never are.
"""

from dataclasses import asdict
from typing import Any

from secure_index.service.credentials import Credential
from secure_index.service.schemas import CollectionInfo, CredentialInfo, ErrorBody
from secure_index.service.store_backend import StoreBackend

__all__ = ["ERROR_RESPONSES", "collection_info", "credential_info"]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 422, 429, 503)
}


def collection_info(backend: StoreBackend, name: str) -> CollectionInfo:
    """The dimension, metric, protection and sizes of collection ``name``."""
    return CollectionInfo(**asdict(backend.stats(name)))


def credential_info(cred: Credential, token: str | None = None) -> CredentialInfo:
    """A key's public description; ``token`` only in the answer that issues the key."""
    return CredentialInfo(
        key_id=cred.key_id,
        role=str(cred.role),
        name=cred.name,
        scopes=sorted(cred.scopes),
        top_k_cap=cred.top_k_cap,
        rate_per_minute=cred.rate_per_minute,
        burst=cred.burst,
        created_at=cred.created_at,
        revoked_at=cred.revoked_at,
        vector_queries=cred.vector_queries,
        score_release=str(cred.score_release),
        query_budget=cred.query_budget,
        budget_window_s=cred.budget_window_s,
        suspended_at=cred.suspended_at,
        token=token,
    )
