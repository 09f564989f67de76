"""The gateway's model routes: promote a released query-side adapter, say which is live.

``PUT /v1/admin/adapter`` (:data:`index_client.routes.LOAD_ADAPTER`) takes the two files
of a released adapter, base64-encoded, with the SHA-256 of each and the operator's
version label; the gateway checks them (:class:`~secure_index.service.promoted_adapter.
PromotedAdapters`), serves the adapter from the next query on without a restart, keeps it
for the next start and appends ``promote-adapter`` to its audit log. ``GET
/v1/admin/adapter`` (:data:`index_client.routes.CURRENT_ADAPTER`) says which adapter is
live and the encoder's fingerprint an adapter must have been trained on. Both need the
admin token. A wrong hash, another base model or malformed files are a 422 and change
nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from index_client import routes
from secure_index.errors import RequestError
from secure_index.service.credentials import ALL_COLLECTIONS
from secure_index.service.deps import AuditDep, EmbedderDep, GatewayPartsDep, require_admin
from secure_index.service.gateway_admin_routes import record_admin_action
from secure_index.service.gateway_responses import ERROR_RESPONSES
from secure_index.service.promoted_adapter import PromotedAdapters
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.routing import handle

__all__ = ["PROMOTE_ADAPTER", "AdapterState", "AdapterUpload", "model_router"]

PROMOTE_ADAPTER = "promote-adapter"
"""The audit log's action name of a promotion."""

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$", description="hex SHA-256")]

model_router = APIRouter(dependencies=[Depends(require_admin)], responses=ERROR_RESPONSES)


class AdapterUpload(BaseModel):
    """The body of ``PUT /v1/admin/adapter``."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="the release's label, e.g. the registry's version number",
    )
    manifest: str = Field(description="adapter.json, base64-encoded")
    weights: str = Field(description="adapter.safetensors, base64-encoded")
    manifest_sha256: Sha256
    weights_sha256: Sha256


class AdapterState(BaseModel):
    """The adapter the gateway serves (never its weights)."""

    source: Literal["promoted", "configured", "none"] = Field(
        description="promoted (PUT /v1/admin/adapter), configured (--adapter) or none"
    )
    version: str | None = None
    weights_sha256: str | None = None
    manifest_sha256: str | None = None
    kind: str | None = None
    base_model_id: str | None = None
    base_model_fingerprint: str | None = None
    promoted_at: str | None = None
    encoder_fingerprint: str | None = Field(
        default=None, description="the gateway encoder's; an adapter must name it"
    )


def get_adapters(parts: GatewayPartsDep) -> PromotedAdapters:
    """The gateway's promoted adapter."""
    return parts.adapters


AdaptersDep = Annotated[PromotedAdapters, Depends(get_adapters)]


def _state(adapters: PromotedAdapters, embedder: QueryEmbedder) -> AdapterState:
    fingerprint = embedder.model_fingerprint
    if adapters.current is not None:
        return AdapterState(
            source="promoted", **adapters.current.to_dict(), encoder_fingerprint=fingerprint
        )
    adapter = embedder.adapter
    if adapter is None:
        return AdapterState(source="none", encoder_fingerprint=fingerprint)
    return AdapterState(
        source="configured",
        kind=adapter.kind.value,
        base_model_id=adapter.base_model.get("id"),
        base_model_fingerprint=adapter.base_model.get("fingerprint"),
        encoder_fingerprint=fingerprint,
    )


def _decode(field: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            f"{field} is not base64",
            expected=f"{field}: the file's bytes, base64-encoded (standard alphabet)",
            fix="encode the file with base64 (the index client does)",
        ) from None


@handle(model_router, routes.LOAD_ADAPTER)
def load_adapter(
    body: AdapterUpload, adapters: AdaptersDep, embedder: EmbedderDep, audit: AuditDep
) -> AdapterState:
    """Check and serve a released adapter from the next query on (no restart)."""
    release = adapters.promote(
        version=body.version,
        manifest=_decode("manifest", body.manifest),
        weights=_decode("weights", body.weights),
        manifest_sha256=body.manifest_sha256,
        weights_sha256=body.weights_sha256,
    )
    record_admin_action(
        audit,
        PROMOTE_ADAPTER,
        ALL_COLLECTIONS,
        {
            "version": release.version,
            "weights_sha256": release.weights_sha256,
            "manifest_sha256": release.manifest_sha256,
            "base_model_fingerprint": release.base_model_fingerprint,
        },
    )
    return _state(adapters, embedder)


@handle(model_router, routes.CURRENT_ADAPTER)
def current_adapter(adapters: AdaptersDep, embedder: EmbedderDep) -> AdapterState:
    """The adapter served now and the encoder fingerprint an adapter must name."""
    return _state(adapters, embedder)
