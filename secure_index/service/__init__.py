"""The HTTP services: partner query gateway, node uploads, internal store API.

The names below load on first use (PEP 562): the gateway pulls in the encoder (torch),
which the store process and most CLI commands never need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from secure_index.service.audit_log import (
        GENESIS_HASH,
        AuditLog,
        AuditRecord,
        AuditVerification,
        verify_audit_log,
    )
    from secure_index.service.credentials import Credential, CredentialRole, CredentialStore
    from secure_index.service.gateway_app import create_gateway_app
    from secure_index.service.metrics import ServiceMetrics, install_metrics
    from secure_index.service.probe_detector import ProbeAlert, ProbeDetector
    from secure_index.service.query_budget import QueryBudget
    from secure_index.service.rate_limit import RateLimiter
    from secure_index.service.score_release import COARSE_SCORE_STEP, ScoreRelease
    from secure_index.service.server import build_service, serve
    from secure_index.service.settings import ServiceSettings
    from secure_index.service.store_app import create_store_app
    from secure_index.service.store_backend import RemoteStore, StoreBackend

_SUBMODULE: dict[str, str] = {
    "AuditLog": "audit_log",
    "AuditRecord": "audit_log",
    "AuditVerification": "audit_log",
    "Credential": "credentials",
    "CredentialStore": "credentials",
    "COARSE_SCORE_STEP": "score_release",
    "GENESIS_HASH": "audit_log",
    "ProbeAlert": "probe_detector",
    "ServiceMetrics": "metrics",
    "install_metrics": "metrics",
    "ProbeDetector": "probe_detector",
    "QueryBudget": "query_budget",
    "ScoreRelease": "score_release",
    "RateLimiter": "rate_limit",
    "RemoteStore": "store_backend",
    "CredentialRole": "credentials",
    "ServiceSettings": "settings",
    "StoreBackend": "store_backend",
    "build_service": "server",
    "create_gateway_app": "gateway_app",
    "create_store_app": "store_app",
    "serve": "server",
    "verify_audit_log": "audit_log",
}


__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "COARSE_SCORE_STEP",
    "GENESIS_HASH",
    "AuditLog",
    "AuditRecord",
    "AuditVerification",
    "Credential",
    "CredentialRole",
    "CredentialStore",
    "ProbeAlert",
    "ProbeDetector",
    "QueryBudget",
    "RateLimiter",
    "RemoteStore",
    "ScoreRelease",
    "ServiceMetrics",
    "ServiceSettings",
    "StoreBackend",
    "build_service",
    "create_gateway_app",
    "create_store_app",
    "install_metrics",
    "serve",
    "verify_audit_log",
]
