"""The query gateway's client for the operator: collections, snapshots and API keys.

Every call carries the operator's admin token (``FEDEMBED_INDEX_ADMIN_TOKEN``); the
gateway appends each change to its hash-chained audit log. An issued key's token is in
the :class:`~index_client.answers.IssuedKey` that :meth:`AdminClient.issue_credential`
returns and nowhere else::

    with AdminClient(url, admin_token) as admin:
        admin.create_collection("scifact", 384)
        partner = admin.issue_credential("partner", "insurer-x", ["scifact"])

It also promotes a released query-side adapter (:meth:`AdminClient.load_adapter`): the
gateway serves it from the next query on, without a restart.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index_client import routes
from index_client.answers import ApiKey, CkksCollection, Collection, IssuedKey, list_of
from index_client.transport import ServiceClient, TlsVerify

__all__ = ["ADAPTER_MANIFEST", "ADAPTER_WEIGHTS", "AdminClient", "ServedAdapter"]

ADAPTER_MANIFEST = "adapter.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
"""The two files of a released adapter (``embedding_core.adapter``'s names)."""


def _generation(document: Any) -> int:
    return int(document["generation"])


def _optional(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    return None if value is None else str(value)


@dataclass(frozen=True)
class ServedAdapter:
    """The adapter a gateway serves (:data:`~index_client.routes.CURRENT_ADAPTER`).

    Attributes:
        source: ``promoted``, ``configured`` (the gateway's ``--adapter``) or ``none``.
        version: The promoted release's label.
        weights_sha256: SHA-256 of its ``adapter.safetensors``.
        manifest_sha256: SHA-256 of its ``adapter.json``.
        base_model_fingerprint: The encoder it was trained on.
        encoder_fingerprint: The gateway encoder's (None: no text queries).
    """

    source: str
    version: str | None
    weights_sha256: str | None
    manifest_sha256: str | None
    base_model_fingerprint: str | None
    encoder_fingerprint: str | None

    @classmethod
    def from_json(cls, document: Any) -> ServedAdapter:
        """Parse the gateway's answer."""
        if not isinstance(document, dict):
            raise TypeError(f"expected a JSON object, got {type(document).__name__}")
        return cls(
            source=str(document["source"]),
            version=_optional(document, "version"),
            weights_sha256=_optional(document, "weights_sha256"),
            manifest_sha256=_optional(document, "manifest_sha256"),
            base_model_fingerprint=_optional(document, "base_model_fingerprint"),
            encoder_fingerprint=_optional(document, "encoder_fingerprint"),
        )


class AdminClient(ServiceClient):
    """The operator's client of the query gateway's admin API.

    Args:
        base_url: The gateway's URL.
        admin_token: The operator's admin token.
        timeout_s: Per-request timeout.
        verify: TLS trust: the CA certificate file that signed the gateway's (only
            that CA is trusted), an ``ssl.SSLContext``, or True (the system trust store).
        retries: Extra attempts after a transport error, a 429 or a 503 (0: none).
    """

    def __init__(
        self,
        base_url: str,
        admin_token: str,
        *,
        timeout_s: float = 60.0,
        verify: TlsVerify = True,
        retries: int = 0,
    ) -> None:
        super().__init__(base_url, admin_token, timeout_s=timeout_s, verify=verify, retries=retries)

    def create_collection(
        self,
        name: str,
        dimension: int,
        *,
        metric: str = "cosine",
        protection: str = "at-rest",
    ) -> Collection:
        """Create a collection (metric ``cosine``, ``ip`` or ``l2``; ``at-rest`` or ``dcpe``).

        Raises:
            index_client.errors.ConflictError: When it already exists.
        """
        body = {"name": name, "dimension": dimension, "metric": metric, "protection": protection}
        return self._transport.call(routes.CREATE_COLLECTION, Collection.from_json, json=body)

    def collections(self) -> list[Collection]:
        """Every at-rest and DCPE collection with its sizes."""
        return self._transport.call(routes.ADMIN_COLLECTIONS, list_of(Collection.from_json))

    def snapshot(self, collection: str) -> int:
        """Fold the collection's log into a new encrypted generation now; returns it."""
        return self._transport.call(routes.SNAPSHOT, _generation, path={"collection": collection})

    def create_ckks_collection(self, name: str) -> CkksCollection:
        """Create a CKKS collection (the gateway's key fixes its dimension).

        Raises:
            index_client.errors.ConflictError: When it already exists.
        """
        return self._transport.call(
            routes.CREATE_CKKS_COLLECTION, CkksCollection.from_json, json={"name": name}
        )

    def issue_credential(
        self,
        role: str,
        name: str,
        scopes: Sequence[str],
        *,
        top_k_cap: int | None = None,
        rate_per_minute: int | None = None,
        burst: int | None = None,
        vector_queries: bool | None = None,
        score_release: str | None = None,
        query_budget: int | None = None,
        budget_window_s: int | None = None,
    ) -> IssuedKey:
        """Issue a ``partner`` or ``node`` key; its token is shown only in this answer.

        Limits and policy left out take the gateway's defaults: no vector queries,
        ``score_release="rank"`` (ranks, no scores), 1000 queries per 86,400 s.

        Args:
            role: ``partner`` or ``node``.
            name: The partner's name or the node id.
            scopes: Collection names (``*`` for all).
            top_k_cap: Largest ``k`` per query.
            rate_per_minute: Sustained request rate.
            burst: Requests allowed at once.
            vector_queries: Grant raw vector queries (risky: basis-vector probes).
            score_release: ``rank``, ``coarse`` (rounded scores) or ``exact`` (risky).
            query_budget: Answered queries per window.
            budget_window_s: The budget's window in seconds.
        """
        body: dict[str, Any] = {"role": role, "name": name, "scopes": list(scopes)}
        limits = {
            "top_k_cap": top_k_cap,
            "rate_per_minute": rate_per_minute,
            "burst": burst,
            "vector_queries": vector_queries,
            "score_release": score_release,
            "query_budget": query_budget,
            "budget_window_s": budget_window_s,
        }
        body.update({field: value for field, value in limits.items() if value is not None})
        return self._transport.call(routes.ISSUE_CREDENTIAL, IssuedKey.from_json, json=body)

    def credentials(self) -> list[ApiKey]:
        """Every key, revoked ones included (never a token)."""
        return self._transport.call(routes.LIST_CREDENTIALS, list_of(ApiKey.from_json))

    def revoke_credential(self, key_id: str) -> ApiKey:
        """Revoke a key; it stops working at once.

        Raises:
            index_client.errors.NotFoundError: When there is no such key.
        """
        return self._transport.call(
            routes.REVOKE_CREDENTIAL, ApiKey.from_json, path={"key_id": key_id}
        )

    def load_adapter(
        self, folder: Path, *, version: str, manifest_sha256: str, weights_sha256: str
    ) -> ServedAdapter:
        """Promote the released adapter in ``folder``; the gateway serves it at once.

        The gateway refuses it (nothing changes) when a file does not match its SHA-256,
        the adapter was trained on another base model, or the files are malformed.

        Args:
            folder: Holds ``adapter.json`` and ``adapter.safetensors``.
            version: The release's label (letters, digits, ``.``, ``_``, ``-``).
            manifest_sha256: The expected SHA-256 of ``adapter.json``.
            weights_sha256: The expected SHA-256 of ``adapter.safetensors``.

        Raises:
            OSError: When a file cannot be read.
            index_client.errors.RequestRejectedError: When the gateway refuses it.
        """
        body = {
            "version": version,
            "manifest": base64.b64encode((folder / ADAPTER_MANIFEST).read_bytes()).decode(),
            "weights": base64.b64encode((folder / ADAPTER_WEIGHTS).read_bytes()).decode(),
            "manifest_sha256": manifest_sha256,
            "weights_sha256": weights_sha256,
        }
        return self._transport.call(routes.LOAD_ADAPTER, ServedAdapter.from_json, json=body)

    def current_adapter(self) -> ServedAdapter:
        """The adapter the gateway serves now, and its encoder's fingerprint."""
        return self._transport.call(routes.CURRENT_ADAPTER, ServedAdapter.from_json)
