"""The console's routes under ``/console``: sign-in, sign-out, the stylesheet and the pages.

Server-rendered HTML, no script. Each page reads the domain services through their
dependencies (the same objects the ``/v1`` routes use) with the caller taken from the
console's cookie instead of a bearer header; any live token may read every page. The
routes stay out of the OpenAPI document: they are pages, not API.
"""

from __future__ import annotations

import hmac
import logging
from functools import cache
from importlib import resources

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from coordinator.admin.audit_jobs import AuditJobs
from coordinator.admin.audit_reports import AuditReports
from coordinator.admin.budgets import Budgets
from coordinator.admin.console.layout import CONSOLE_PREFIX, ConsoleHeaders, Viewer, fetch
from coordinator.admin.console.login_page import error_page, login_page
from coordinator.admin.console.overview import OverviewData, overview_cards, overview_page
from coordinator.admin.console.pages_federation import nodes_page, run_page, runs_page
from coordinator.admin.console.pages_release import (
    AuditView,
    BudgetView,
    audit_page,
    budgets_page,
    models_page,
    partners_page,
)
from coordinator.admin.console.session import (
    COOKIE_NAME,
    ConsoleCallerDep,
    ConsoleLoginRequired,
    ConsoleSession,
    clear_session,
    form_fields,
    login_nonce_matches,
    login_required,
    logout_proof,
    new_login_nonce,
    same_origin,
    set_login_nonce,
    set_session,
)
from coordinator.admin.deps import (
    AuditJobsDep,
    AuditReportsDep,
    BudgetsDep,
    MembersDep,
    ModelsDep,
    PartnersDep,
    PartsDep,
    RunsDep,
)
from coordinator.admin.errors import AdminError, AdminNotFoundError
from coordinator.admin.settings import AdminSettings

__all__ = ["install", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix=CONSOLE_PREFIX, include_in_schema=False)


def install(app: FastAPI, settings: AdminSettings) -> None:
    """Add the console's headers (every response under /console) and its login redirect."""
    del settings  # the console reads the domain services the other modules install
    app.add_middleware(ConsoleHeaders)
    app.add_exception_handler(ConsoleLoginRequired, login_required)


@cache
def _stylesheet() -> str:
    return (
        resources.files("coordinator.admin.console")
        .joinpath("console.css")
        .read_text(encoding="utf-8")
    )


def html(content: str, status_code: int = 200) -> HTMLResponse:
    """An HTML page (the security headers come from :class:`ConsoleHeaders`)."""
    return HTMLResponse(content, status_code=status_code)


@router.get("/static/console.css")
def stylesheet() -> Response:
    """The console's only stylesheet."""
    return Response(_stylesheet(), media_type="text/css; charset=utf-8")


def _login_form(request: Request, *, problem: str | None = None, status: int = 200) -> Response:
    """The login form with a fresh nonce (its cookie set on the same answer)."""
    nonce = new_login_nonce()
    response = html(login_page(nonce, problem=problem), status)
    set_login_nonce(response, nonce, secure=request.url.scheme == "https")
    return response


def _refused(title: str, problem: str, fix: str) -> HTMLResponse:
    return html(error_page(title, problem, fix=fix), 403)


@router.get("/login", response_model=None)
def login_form(request: Request) -> Response:
    """The login form."""
    return _login_form(request)


@router.post("/login", response_model=None)
async def login(request: Request, parts: PartsDep) -> Response:
    """Check the posted token; a live one becomes the console's cookie."""
    fields = await form_fields(request)
    if not same_origin(request):
        logger.info("console sign-in refused: posted from another site")
        return _refused(
            "Sign-in refused",
            "the sign-in was posted from another site",
            "open the console's login page (/console/login) and sign in there",
        )
    if fields is None or not login_nonce_matches(request, fields):
        logger.info("console sign-in refused: not the console's current login form")
        return _login_form(
            request,
            problem="The sign-in form was not this console's current one; sign in again.",
            status=403,
        )
    secret = fields.get("token", "").strip()
    token = parts.tokens.authenticate(secret) if secret else None
    if token is None:
        logger.info("console sign-in refused: no live token")
        return _login_form(request, problem="That is not a live admin API token.", status=401)
    logger.info("console sign-in: token %s (%s)", token.token_id, token.role)
    response = RedirectResponse(f"{CONSOLE_PREFIX}/", status_code=303)
    set_session(response, secret, secure=request.url.scheme == "https")
    return response


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    """Drop the console's cookie (the form must carry its session's logout value)."""
    fields = await form_fields(request) or {}
    secret = request.cookies.get(COOKIE_NAME)
    proof = fields.get("proof", "")
    if secret is not None and not (
        same_origin(request) and hmac.compare_digest(proof, logout_proof(secret))
    ):
        return _refused(
            "Sign-out refused",
            "the sign-out was not posted from one of the console's pages",
            "use the Log out button of a console page",
        )
    response = RedirectResponse(f"{CONSOLE_PREFIX}/login", status_code=303)
    clear_session(response)
    return response


# --- pages ------------------------------------------------------------------------------


def _viewer(caller: ConsoleSession) -> Viewer:
    token = caller.token
    return Viewer(name=token.name, role=str(token.role.value), logout_proof=caller.logout_proof)


def _budget_view(budgets: Budgets) -> BudgetView:
    return BudgetView(
        members=budgets.members(),
        max_epsilon=budgets.policy.privacy.max_epsilon_per_node,
        policy_path=str(budgets.policy_path),
    )


def _audit_view(reports: AuditReports, jobs: AuditJobs) -> AuditView:
    summaries = reports.summaries()
    return AuditView(
        reports=[(summary, reports.verify(summary.job)) for summary in summaries],
        jobs=jobs.jobs(),
    )


@router.get("/")
def overview(
    caller: ConsoleCallerDep,
    members: MembersDep,
    runs: RunsDep,
    budgets: BudgetsDep,
    models: ModelsDep,
    partners: PartnersDep,
    reports: AuditReportsDep,
    jobs: AuditJobsDep,
) -> HTMLResponse:
    """The overview: one card per page."""
    data = OverviewData(
        roster=fetch(members.list, what="members"),
        runs=fetch(runs.list, what="runs"),
        budgets=fetch(lambda: _budget_view(budgets), what="budgets"),
        models=fetch(models.list, what="models"),
        partners=fetch(partners.list, what="partners"),
        audit=fetch(lambda: _audit_view(reports, jobs), what="audit reports"),
    )
    return html(overview_page(overview_cards(data), viewer=_viewer(caller)))


@router.get("/nodes")
def nodes(caller: ConsoleCallerDep, members: MembersDep) -> HTMLResponse:
    """Members by kit name: Flower node id, online state, last seen."""
    return html(nodes_page(fetch(members.list, what="members"), viewer=_viewer(caller)))


@router.get("/runs")
def runs_list(caller: ConsoleCallerDep, runs: RunsDep) -> HTMLResponse:
    """Every run with its state and progress."""
    return html(runs_page(fetch(runs.list, what="runs"), viewer=_viewer(caller)))


@router.get("/runs/{name}")
def run_detail(name: str, caller: ConsoleCallerDep, runs: RunsDep) -> HTMLResponse:
    """One run: per-round progress and the nDCG@10 plot."""
    try:
        run = runs.status(name)
    except AdminNotFoundError as err:
        return html(error_page("No such run", err.problem, fix=err.fix or None), 404)
    except AdminError as err:
        return html(error_page("Run unavailable", err.problem, fix=err.fix or None), err.status)
    return html(run_page(run, viewer=_viewer(caller)))


@router.get("/budgets")
def budgets_view(caller: ConsoleCallerDep, budgets: BudgetsDep) -> HTMLResponse:
    """Each member's epsilon per run and in all, against the policy."""
    fetched = fetch(lambda: _budget_view(budgets), what="budgets")
    return html(budgets_page(fetched, viewer=_viewer(caller)))


@router.get("/models")
def models_view(caller: ConsoleCallerDep, models: ModelsDep) -> HTMLResponse:
    """The model registry's versions and the live one."""
    return html(models_page(fetch(models.list, what="models"), viewer=_viewer(caller)))


@router.get("/partners")
def partners_view(caller: ConsoleCallerDep, partners: PartnersDep) -> HTMLResponse:
    """The query gateway's partner keys."""
    return html(partners_page(fetch(partners.list, what="partners"), viewer=_viewer(caller)))


@router.get("/audit")
def audit_view(
    caller: ConsoleCallerDep, reports: AuditReportsDep, jobs: AuditJobsDep
) -> HTMLResponse:
    """Audit reports with their SHA-256 verification, and audit jobs."""
    fetched = fetch(lambda: _audit_view(reports, jobs), what="audit reports")
    return html(audit_page(fetched, viewer=_viewer(caller)))
