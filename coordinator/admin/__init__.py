"""The consortium's control plane: the admin API (``fedembed coordinator admin serve``).

The names below load on first use (PEP 562), so ``fedembed --help`` does not import
FastAPI, uvicorn or the domains' services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from coordinator.admin.app import DOMAINS, create_admin_app
    from coordinator.admin.audit_trail import AdminAuditTrail
    from coordinator.admin.deps import AdminParts
    from coordinator.admin.home import ConsortiumHome
    from coordinator.admin.http_errors import install_error_handlers
    from coordinator.admin.metrics import AdminMetrics, FederationCollector
    from coordinator.admin.server import build_parts, open_state, serve
    from coordinator.admin.settings import AdminSettings
    from coordinator.admin.token_store import AdminTokenStore, TokenStoreError
    from coordinator.admin.tokens import AdminRole, AdminToken
    from coordinator.admin.trail_anchor import load_trail_key
    from coordinator.admin.trail_records import TrailError
    from coordinator.admin.trail_verification import TrailVerification, verify_trail

_SUBMODULE: dict[str, str] = {
    "DOMAINS": "app",
    "create_admin_app": "app",
    "AdminAuditTrail": "audit_trail",
    "TrailError": "trail_records",
    "TrailVerification": "trail_verification",
    "load_trail_key": "trail_anchor",
    "verify_trail": "trail_verification",
    "AdminParts": "deps",
    "ConsortiumHome": "home",
    "install_error_handlers": "http_errors",
    "AdminMetrics": "metrics",
    "FederationCollector": "metrics",
    "build_parts": "server",
    "open_state": "server",
    "serve": "server",
    "AdminSettings": "settings",
    "AdminTokenStore": "token_store",
    "TokenStoreError": "token_store",
    "AdminRole": "tokens",
    "AdminToken": "tokens",
}
__all__ = [
    "DOMAINS",
    "AdminAuditTrail",
    "AdminMetrics",
    "AdminParts",
    "AdminRole",
    "AdminSettings",
    "AdminToken",
    "AdminTokenStore",
    "ConsortiumHome",
    "FederationCollector",
    "TokenStoreError",
    "TrailError",
    "TrailVerification",
    "build_parts",
    "create_admin_app",
    "install_error_handlers",
    "load_trail_key",
    "open_state",
    "serve",
    "verify_trail",
]

__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)
