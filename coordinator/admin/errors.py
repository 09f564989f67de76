"""The admin API's error kinds: each a FedembedError with the HTTP status it answers.

Domain code raises these (problem, expected, fix in the API's own words: JSON fields,
routes); :mod:`coordinator.admin.http_errors` turns every failure into
``{"error": {"problem", "expected", "fix"}}``.
"""

from __future__ import annotations

from embedding_core.errors import FedembedError

__all__ = [
    "AdminConflictError",
    "AdminError",
    "AdminInvalidError",
    "AdminNotFoundError",
    "AdminUnavailableError",
]


class AdminError(FedembedError):
    """A failure the admin API answers with ``status``."""

    status = 422


class AdminInvalidError(AdminError):
    """The request is well-formed but not acceptable (422)."""

    status = 422


class AdminNotFoundError(AdminError):
    """The named member, run, model version, key or report does not exist (404)."""

    status = 404


class AdminConflictError(AdminError):
    """The request conflicts with the current state (409): e.g. the name is taken."""

    status = 409


class AdminUnavailableError(AdminError):
    """A service the admin API relies on (SuperLink, gateway) cannot be reached (503)."""

    status = 503
