"""The HTTP services: partner query gateway, node uploads, internal store API."""

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
