"""The admin API's web console: server-rendered pages under ``/console``, no script.

Nodes, runs (with each run's per-round nDCG@10 plot, drawn as inline SVG), budgets,
models, partners and audit reports, read through the same domain services as the
``/v1`` routes. Self-contained (one same-origin stylesheet, no CDN, no font) and served
under a strict Content-Security-Policy; sign-in with an admin API token of any role,
kept in an HttpOnly, SameSite=Strict cookie.
"""

from coordinator.admin.console.layout import CONSOLE_PREFIX, CONTENT_SECURITY_POLICY
from coordinator.admin.console.markup import Html, escape, tag
from coordinator.admin.console.routes_console import install, router
from coordinator.admin.console.session import COOKIE_NAME
from coordinator.admin.console.svg_plot import line_plot

__all__ = [
    "CONSOLE_PREFIX",
    "CONTENT_SECURITY_POLICY",
    "COOKIE_NAME",
    "Html",
    "escape",
    "install",
    "line_plot",
    "router",
    "tag",
]
