"""The HTTP services: partner query gateway, node uploads, internal store API.

The names below load on first use (PEP 562): the gateway pulls in the encoder (torch),
which the store process and most CLI commands never need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secure_index.service.audit_log import (
        GENESIS_HASH,
        AuditLog,
        AuditRecord,
        AuditVerification,
        verify_audit_log,
    )
    from secure_index.service.credentials import Credential, CredentialStore, Role
    from secure_index.service.gateway_app import create_gateway_app
    from secure_index.service.rate_limit import RateLimiter
    from secure_index.service.server import build_service, serve
    from secure_index.service.settings import ServiceSettings
    from secure_index.service.store_app import create_store_app
    from secure_index.service.store_backend import RemoteStore, StoreBackend

_SUBMODULE: dict[str, str] = {
    "AuditLog": "service.audit_log",
    "AuditRecord": "service.audit_log",
    "AuditVerification": "service.audit_log",
    "Credential": "service.credentials",
    "CredentialStore": "service.credentials",
    "GENESIS_HASH": "service.audit_log",
    "RateLimiter": "service.rate_limit",
    "RemoteStore": "service.store_backend",
    "Role": "service.credentials",
    "ServiceSettings": "service.settings",
    "StoreBackend": "service.store_backend",
    "build_service": "service.server",
    "create_gateway_app": "service.gateway_app",
    "create_store_app": "service.store_app",
    "serve": "service.server",
    "verify_audit_log": "service.audit_log",
}


def __getattr__(name: str) -> Any:
    module = _SUBMODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULE))


__all__ = [
    "GENESIS_HASH",
    "AuditLog",
    "AuditRecord",
    "AuditVerification",
    "Credential",
    "CredentialStore",
    "RateLimiter",
    "RemoteStore",
    "Role",
    "ServiceSettings",
    "StoreBackend",
    "build_service",
    "create_gateway_app",
    "create_store_app",
    "serve",
    "verify_audit_log",
]
