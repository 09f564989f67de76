"""Start the admin API: its parts from the consortium home, then uvicorn.

:func:`build_parts` opens the admin API's own state in ``<home>/admin`` (folder 0700):
the token store (``tokens.json``), the audit trail (``trail.jsonl`` and its anchor) and
the trail key (``trail.key``, made on the first start unless
``FEDEMBED_ADMIN_TRAIL_KEY`` is set). The CLI's token commands use the same parts, so a
token issued or revoked on the command line is in the same file and the same trail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import uvicorn

from coordinator.admin.app import create_admin_app
from coordinator.admin.audit_trail import AdminAuditTrail
from coordinator.admin.deps import AdminParts
from coordinator.admin.settings import AdminSettings
from coordinator.admin.token_store import TOKENS_FILE, AdminTokenStore
from coordinator.admin.trail_anchor import load_trail_key
from coordinator.admin.trail_records import TRAIL_FILE

__all__ = ["AdminState", "build_parts", "open_state", "serve"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdminState:
    """The admin API's own state: its token store and its audit trail."""

    tokens: AdminTokenStore
    trail: AdminAuditTrail


def open_state(settings: AdminSettings) -> AdminState:
    """The token store and the audit trail in ``<home>/admin`` (made on first use).

    Raises:
        TrailError: When the trail key cannot be read or the trail does not verify.
    """
    state = settings.consortium.state
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    env_key = settings.trail_key.get_secret_value() if settings.trail_key else None
    key = load_trail_key(state, env_key, create=True)
    trail = AdminAuditTrail(state / TRAIL_FILE, key=key)
    return AdminState(tokens=AdminTokenStore(state / TOKENS_FILE), trail=trail)


def build_parts(settings: AdminSettings) -> AdminParts:
    """The app's core parts over :func:`open_state`."""
    opened = open_state(settings)
    return AdminParts(settings=settings, tokens=opened.tokens, trail=opened.trail)


def serve(settings: AdminSettings) -> None:
    """Run the admin API until interrupted (Ctrl-C or SIGTERM)."""
    opened = open_state(settings)
    parts = AdminParts(settings=settings, tokens=opened.tokens, trail=opened.trail)
    app = create_admin_app(settings, parts=parts)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,  # the audit trail records state changes; no tokens in logs
    )
    logger.info("admin API: http://%s:%d (home %s)", settings.host, settings.port, settings.home)
    try:
        uvicorn.Server(config).run()
    finally:
        opened.trail.close()
        logger.info("admin API: stopped")
