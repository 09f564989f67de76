"""The admin API's web console: every page from a prepared consortium home, sign-in by
cookie, the security headers, escaping of names, and the server-drawn nDCG@10 plot.

The home is written as the consortium writes it: kits by `coordinator provision` (one
member revoked by the kits' enrolment), run folders as the admin API and the ServerApp
leave them (run.json, federation_ledger.json, central_metrics.json, history.json, the
published adapter), a model version registered by the model registry, and audit reports
as `fedembed audit` writes them (views recorded by the audit jobs' `record_views`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from coordinator.admin.app import create_admin_app
from coordinator.admin.audit_reports import record_views
from coordinator.admin.console import CONTENT_SECURITY_POLICY, COOKIE_NAME, escape, router, tag
from coordinator.admin.console.svg_plot import line_plot, ticks
from coordinator.admin.home import ConsortiumHome
from coordinator.admin.model_registry import ModelRegistry
from coordinator.admin.partners import PartnerGrant, PartnerKeys
from coordinator.admin.server import build_parts
from coordinator.admin.settings import AdminSettings
from coordinator.admin.token_store import AdminTokenStore
from coordinator.admin.tokens import AdminRole
from coordinator.run_folder import ADAPTER_DIR, CENTRAL_METRICS_FILE, HISTORY_FILE, LEDGER_FILE
from deployment.flower_processes import free_port
from embedding_core.adapter import Adapter
from kits.enrolment import revoke_member
from kits.provisioning import provision
from privacy import Observer, covered_by
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import CredentialStore
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.query_embedder import QueryEmbedder

SCRIPT = "<script>alert(1)</script>"
GATEWAY_TOKEN = "gateway-admin-token-of-at-least-32-characters"
MEMBERS = ("hospital-a", "bank_b", "clinic-c")
REVOKED = "clinic-c"
NDCG = {0: 0.512, 1: 0.534, 2: 0.561, 3: 0.587}
PAGES = (
    "/console/",
    "/console/nodes",
    "/console/runs",
    "/console/runs/run-ok",
    "/console/budgets",
    "/console/models",
    "/console/partners",
    "/console/audit",
)


def _json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _node_report(epsilon: float) -> dict[str, Any]:
    """A node's answer as the federation ledger records it (its total, the charge)."""
    return {
        "answered": True,
        "epsilon": epsilon,
        "noise_multiplier": 20.0,
        "sample_rate": 1.0,
        "steps": 1,
    }


def _ledger(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """A federation ledger in the form FederationLedger.to_dict writes."""
    per_node: dict[str, float] = {}
    entries = []
    for number, nodes in enumerate(rounds, start=1):
        for node, report in nodes.items():
            if "epsilon" in report:
                per_node[node] = report["epsilon"]
        released = any("error" not in report for report in nodes.values())
        entries.append(
            {
                "round": number,
                "sampled": len(nodes),
                "released": released,
                "nodes": nodes,
                "node_level_epsilon": None,
            }
        )
    return {
        "sample_level": {
            "observer": Observer.FELLOW_MEMBER.value,
            "holds_for": [o.value for o in covered_by(Observer.FELLOW_MEMBER)],
            "per_node_epsilon": per_node,
        },
        "node_level": {"noise_multiplier": 0.0, "epsilon": None},
        "refusals": [
            {"round": e["round"], "node": n, "reason": r["error"]}
            for e in entries
            for n, r in e["nodes"].items()
            if "error" in r
        ],
        "rounds": entries,
    }


def _run_folder(
    home: ConsortiumHome,
    name: str,
    *,
    state: str,
    rounds_total: int,
    ledger: dict[str, Any],
    history: dict[str, Any],
    metrics: dict[int, float] | None,
) -> Path:
    """A run folder as the admin API (run.json) and the ServerApp (the rest) leave it."""
    folder = home.runs / name
    folder.mkdir(parents=True)
    config = {
        "num-server-rounds": rounds_total,
        "out-dir": str(folder),
        "coordinator-kit": str(home.coordinator_kit),
        "run-tag": name,
        "eval-dataset": "scifact" if metrics is not None else "none",
    }
    _json(
        folder / "run.json",
        {
            "name": name,
            "request": {"name": name, "run_config": {"num-server-rounds": rounds_total}},
            "run_config": config,
            "rounds_total": rounds_total,
            "flower_run_id": 4242 if state == "succeeded" else 4343,
            "created": "2026-12-01T10:00:00+00:00"
            if state == "succeeded"
            else "2026-12-02T09:00:00+00:00",
            "submitted": "2026-12-01T10:00:01+00:00",
            "finished": "2026-12-01T10:20:00+00:00",
            "state": state,
            "flower_status": f"finished:{'completed' if state == 'succeeded' else 'failed'}",
        },
    )
    _json(folder / LEDGER_FILE, ledger)
    _json(folder / HISTORY_FILE, history)
    if metrics is not None:
        rounds = {str(r): {"ndcg@10": v, "recall@100": v + 0.2} for r, v in metrics.items()}
        _json(folder / CENTRAL_METRICS_FILE, {"dataset": "scifact", "rounds": rounds})
    return folder


def _audit_report(home: ConsortiumHome, job: str, *, tamper: bool) -> None:
    """A report as `fedembed audit` writes it, its views recorded; optionally changed after."""
    folder = home.audit / job
    folder.mkdir(parents=True)
    record = json.dumps({"title": "fedembed privacy and bias audit", "verdict": "PASS"}).encode()
    digest = hashlib.sha256(record).hexdigest()
    (folder / "report.json").write_bytes(record)
    (folder / "report.json.sha256").write_text(f"{digest}  report.json\n", encoding="ascii")
    (folder / "report.html").write_text(f"<p>report.json SHA-256 {digest}</p>", encoding="utf-8")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4\n% report\n")
    record_views(folder)
    if tamper:
        (folder / "report.html").write_text("<p>edited afterwards</p>", encoding="utf-8")


def prepare_consortium(settings: AdminSettings) -> dict[str, Any]:
    """A consortium home with members, two runs, a model version and two audit reports."""
    home = settings.consortium
    provision(home.kits, node_ids=list(MEMBERS))
    revoke_member(home.kits, REVOKED)
    ok = _run_folder(
        home,
        "run-ok",
        state="succeeded",
        rounds_total=3,
        ledger=_ledger(
            [
                {"hospital-a": _node_report(1.0), "bank_b": _node_report(1.5)},
                {"hospital-a": _node_report(2.0), "bank_b": _node_report(3.0)},
                {"hospital-a": _node_report(3.0), "bank_b": _node_report(7.0)},
            ]
        ),
        history={
            "status": "succeeded",
            "per_node_epsilon": {"hospital-a": 3.0, "bank_b": 7.0},
            "final": {"ndcg@10": NDCG[3]},
        },
        metrics=NDCG,
    )
    Adapter(8, kind="shift").save(
        ok / ADAPTER_DIR, base_model_id="all-MiniLM-L6-v2", base_model_fingerprint="f" * 64
    )
    _run_folder(
        home,
        "run-empty",
        state="failed",
        rounds_total=2,
        ledger=_ledger(
            [{"hospital-a": {"error": "privacy budget exhausted"}, SCRIPT: {"error": SCRIPT}}]
        ),
        history={"status": "failed", "reason": "no round was aggregated; nothing published"},
        metrics=None,
    )
    version = ModelRegistry(settings).register("run-ok")
    _audit_report(home, "audit-1", tamper=False)
    _audit_report(home, "audit-2", tamper=True)
    return version


@pytest.fixture
def consortium(admin_settings: AdminSettings) -> dict[str, Any]:
    return prepare_consortium(admin_settings)


def _form_value(page: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]+)">', page)
    assert found, f"no {name} field"
    return found.group(1)


def _login_nonce(client: TestClient) -> str:
    """Open the login form (which sets its nonce cookie); the nonce it carries."""
    return _form_value(client.get("/console/login").text, "nonce")


def _sign_in(client: TestClient, secret: str) -> None:
    form = {"token": secret, "nonce": _login_nonce(client)}
    answer = client.post("/console/login", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/"


def _cookie(answer: Any, name: str) -> str | None:
    """The Set-Cookie line of cookie ``name`` in an answer (None: not set)."""
    found = [c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return found[0] if found else None


class _Elements(HTMLParser):
    """Every start tag and the text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


def _assert_console_headers(headers: Any) -> None:
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


def test_every_page_shows_the_consortium_with_a_strict_csp(
    admin_client: TestClient, admin_tokens: dict[AdminRole, str], consortium: dict[str, Any]
) -> None:
    # Prepare
    _sign_in(admin_client, admin_tokens[AdminRole.AUDITOR])
    # Execute
    pages = {path: admin_client.get(path) for path in PAGES}
    css = admin_client.get("/console/static/console.css")
    # Assert: every page answers, under the console's headers, with no script and
    # nothing loaded from elsewhere
    for path, answer in pages.items():
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["content-type"].startswith("text/html")
        _assert_console_headers(answer.headers)
        elements = _parse(answer.text)
        assert not [t for t, _ in elements.tags if t in ("script", "iframe", "object")], path
        assert not [a for _, a in elements.tags if "style" in a], path  # no inline style
        for _, attrs in elements.tags:
            for name in ("src", "href", "action"):
                value = attrs.get(name) or ""
                assert not value.startswith(("http:", "https:", "//")), (path, value)
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    _assert_console_headers(css.headers)
    # the real data of each page
    nodes = pages["/console/nodes"].text
    for member in MEMBERS:
        assert f"<strong>{member}</strong>" in nodes
    assert re.search(
        rf"<strong>{REVOKED}</strong></td><td><span class=\"badge badge-bad\">revoked", nodes
    )
    runs = pages["/console/runs"].text
    assert 'href="/console/runs/run-ok"' in runs
    assert 'href="/console/runs/run-empty"' in runs
    assert "0.5870" in runs  # run-ok's last nDCG@10
    run = pages["/console/runs/run-ok"].text
    assert 'id="ndcg-plot"' in run
    circles = [a for t, a in _parse(run).tags if t == "circle"]
    assert [(a["data-x"], a["data-y"]) for a in circles] == [
        (str(r), f"{v:.6g}") for r, v in NDCG.items()
    ]
    assert '<progress value="3" max="3">' in run
    budgets = pages["/console/budgets"].text
    assert "<strong>bank_b</strong>" in budgets
    assert "<strong>hospital-a</strong>" in budgets
    assert '<span class="badge badge-warn">near</span>' in budgets  # bank_b: 7 of 8
    assert "7.00 of 8.00" in budgets
    models = pages["/console/models"].text
    weights_sha = consortium["files"]["adapter.safetensors"]
    assert f'title="{weights_sha}"' in models
    assert '<span class="badge badge-ok">intact</span>' in models
    assert "<li><strong>fellow-member</strong>: sample-level 7.00</li>" in models
    assert "no version promoted yet" in models
    audit = _parse(pages["/console/audit"].text)
    rows = "".join(audit.text)
    assert "audit-1" in rows
    assert "audit-2" in rows
    assert "verified" in rows
    assert "mismatch" in rows
    partners = pages["/console/partners"].text
    assert "FEDEMBED_ADMIN_GATEWAY_URL" in partners  # no gateway configured: said, not a 500
    overview = "".join(_parse(pages["/console/"].text).text)
    assert "2 enrolled, 1 revoked" in overview
    assert "1 versions registered" in overview
    assert "1 of 2 verify" in overview


def test_a_run_without_metrics_has_no_plot_and_says_so(
    admin_client: TestClient, admin_tokens: dict[AdminRole, str], consortium: dict[str, Any]
) -> None:
    # Prepare
    _sign_in(admin_client, admin_tokens[AdminRole.OPERATOR])
    # Execute
    answer = admin_client.get("/console/runs/run-empty")
    unknown = admin_client.get("/console/runs/no-such-run")
    # Assert
    assert answer.status_code == 200
    assert "<svg" not in answer.text
    assert "No central metrics yet" in answer.text
    assert "no round was aggregated; nothing published" in answer.text
    assert '<span class="badge badge-bad">failed</span>' in answer.text
    assert unknown.status_code == 404
    assert "no run named" in unknown.text
    _assert_console_headers(unknown.headers)


def test_names_and_reasons_are_shown_as_text_never_as_markup(
    admin_client: TestClient, admin_tokens: dict[AdminRole, str], consortium: dict[str, Any]
) -> None:
    # Prepare: a node registered under a name holding <script>, refusing with one
    _sign_in(admin_client, admin_tokens[AdminRole.ADMIN])
    # Execute
    pages = [
        admin_client.get(path).text for path in ("/console/runs/run-empty", "/console/budgets")
    ]
    # Assert
    for page in pages:
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        elements = _parse(page)
        assert "script" not in [t for t, _ in elements.tags]
        assert SCRIPT in "".join(elements.text)  # shown, as text


def test_markup_escapes_text_and_attribute_values() -> None:
    # Execute
    cell = tag("td", SCRIPT, title='"><img src=x onerror=alert(1)>', class_="name")
    # Assert
    assert cell == (
        '<td title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" class="name">'
        "&lt;script&gt;alert(1)&lt;/script&gt;</td>"
    )
    assert escape(tag("b", "x")) == "<b>x</b>"  # markup is not escaped twice
    assert (
        tag("input", name="token", required=True, hidden=False) == '<input name="token" required>'
    )


def test_the_console_has_no_page_this_file_does_not_check() -> None:
    # Prepare: the console's routes that need no token (the form, its post, the stylesheet)
    public = {
        ("GET", "/console/login"),
        ("POST", "/console/login"),
        ("POST", "/console/logout"),
        ("GET", "/console/static/console.css"),
    }
    checked = {("GET", path.replace("/run-ok", "/{name}")) for path in PAGES}
    # Execute
    routes = {
        (method, route.path)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods - {"HEAD"}
    }
    # Assert: every other console route is a page the sign-in test below visits
    assert routes == public | checked


def test_every_page_sends_a_caller_without_a_live_token_to_the_login_page(
    admin_client: TestClient,
    admin_parts: Any,
    admin_tokens: dict[AdminRole, str],
    consortium: dict[str, Any],
) -> None:
    # Prepare: a revoked token and an unknown one
    store = admin_parts.tokens
    assert isinstance(store, AdminTokenStore)
    token, revoked = store.create("gone", AdminRole.ADMIN)
    store.revoke(token.token_id)
    unknown = "fea_" + "0" * 12 + "." + "A" * 43
    bearer = {"Authorization": f"Bearer {admin_tokens[AdminRole.ADMIN]}"}
    for path in PAGES:
        for cookie in (None, unknown, revoked):
            admin_client.cookies.clear()
            if cookie is not None:
                admin_client.cookies.set(COOKIE_NAME, cookie, path="/console")
            # Execute
            answer = admin_client.get(path, follow_redirects=False)
            # Assert
            assert answer.status_code == 303, (path, cookie)
            assert answer.headers["location"] == "/console/login"
            _assert_console_headers(answer.headers)
            if cookie is not None:  # a stale cookie is dropped
                assert f"{COOKIE_NAME}=" in answer.headers["set-cookie"]
                assert "Max-Age=0" in answer.headers["set-cookie"]
        # a bearer header is the API's, not the console's
        admin_client.cookies.clear()
        assert admin_client.get(path, headers=bearer, follow_redirects=False).status_code == 303
    login = admin_client.get("/console/login")
    assert login.status_code == 200
    assert '<form method="post" action="/console/login">' in login.text
    _assert_console_headers(login.headers)


def test_sign_in_sets_a_strict_cookie_and_refuses_a_wrong_token(
    admin_app: FastAPI, admin_tokens: dict[AdminRole, str]
) -> None:
    # Prepare
    plain = TestClient(admin_app)
    tls = TestClient(admin_app, base_url="https://testserver")
    secret = admin_tokens[AdminRole.AUDITOR]
    # Execute
    wrong = plain.post(
        "/console/login",
        data={"token": secret + "x", "nonce": _login_nonce(plain)},
        follow_redirects=False,
    )
    over_http = plain.post(
        "/console/login",
        data={"token": secret, "nonce": _login_nonce(plain)},
        follow_redirects=False,
    )
    over_https = tls.post(
        "/console/login", data={"token": secret, "nonce": _login_nonce(tls)}, follow_redirects=False
    )
    # Assert
    assert wrong.status_code == 401
    assert _cookie(wrong, COOKIE_NAME) is None
    assert "That is not a live admin API token." in wrong.text
    _assert_console_headers(wrong.headers)
    cookie = _cookie(over_http, COOKIE_NAME)
    assert cookie is not None
    assert cookie.startswith(f"{COOKIE_NAME}={secret};")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/console", "samesite=strict"} <= attributes
    assert "secure" not in attributes
    secure_cookie = _cookie(over_https, COOKIE_NAME)
    assert secure_cookie is not None
    secure = {p.strip().lower() for p in secure_cookie.split(";")[1:]}
    assert {"httponly", "path=/console", "samesite=strict", "secure"} <= secure


def test_forms_not_posted_from_the_console_itself_are_refused(
    admin_client: TestClient, admin_tokens: dict[AdminRole, str]
) -> None:
    # Prepare: what a browser sends with a form of another site, and with the console's own
    # (Origin: null, as under Referrer-Policy: no-referrer)
    secret = admin_tokens[AdminRole.ADMIN]
    cross_site = (
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    )
    own = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    nonce = _login_nonce(admin_client)
    # Execute
    refused = [
        admin_client.post(
            "/console/login",
            data={"token": secret, "nonce": nonce},
            headers=h,
            follow_redirects=False,
        )
        for h in cross_site
    ]
    refused += [
        admin_client.post("/console/login", data=form, headers=own, follow_redirects=False)
        for form in ({"token": secret}, {"token": secret, "nonce": nonce + "x"})
    ]
    refused.append(admin_client.post("/console/login", content=b"", follow_redirects=False))
    accepted = admin_client.post(
        "/console/login",
        data={"token": secret, "nonce": _login_nonce(admin_client)},  # a refusal renews it
        headers=own,
        follow_redirects=False,
    )
    proof = _form_value(admin_client.get("/console/runs").text, "proof")
    forced = [
        admin_client.post("/console/logout", headers=own, follow_redirects=False),
        admin_client.post(
            "/console/logout",
            data={"proof": proof},
            headers={"Sec-Fetch-Site": "cross-site"},
            follow_redirects=False,
        ),
    ]
    after_forced = admin_client.get("/console/runs", follow_redirects=False)
    logout = admin_client.post(
        "/console/logout", data={"proof": proof}, headers=own, follow_redirects=False
    )
    after_logout = admin_client.get("/console/runs", follow_redirects=False)
    # Assert
    for answer in refused:
        assert answer.status_code == 403
        assert _cookie(answer, COOKIE_NAME) is None
        _assert_console_headers(answer.headers)
    assert accepted.status_code == 303
    assert _cookie(accepted, COOKIE_NAME) is not None
    assert [answer.status_code for answer in forced] == [403, 403]
    assert after_forced.status_code == 200  # still signed in
    assert logout.status_code == 303
    assert logout.headers["location"] == "/console/login"
    session = _cookie(logout, COOKIE_NAME)
    assert session is not None
    assert "Max-Age=0" in session
    assert after_logout.status_code == 303


@contextmanager
def _gateway(folder: Path) -> Iterator[str]:
    """A real query gateway (key store, audit log, encrypted store) behind uvicorn."""
    keks = KeyFileKeks.create(folder / "kek.json")
    store = IndexStore(folder / "store", keks=keks, tenant="t", background=False)
    app = create_gateway_app(
        backend=store,
        credentials=CredentialStore(folder / "credentials.sqlite"),
        audit=AuditLog(folder / "audit" / "audit.jsonl", keks=keks),
        embedder=QueryEmbedder(None),
        admin_token=GATEWAY_TOKEN,
        limits=GatewayLimits(max_body_bytes=1 << 20, max_batch=100, max_k=100),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            thread.join(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        store.close()


def test_the_partners_page_lists_the_gateways_partner_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: partner keys issued and revoked at a real gateway through the admin API's
    # partner service
    for variable in ("FEDEMBED_ADMIN_TRAIL_KEY", "FEDEMBED_ADMIN_METRICS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    with _gateway(tmp_path / "gateway") as url:
        monkeypatch.setenv("FEDEMBED_ADMIN_GATEWAY_URL", url)
        monkeypatch.setenv("FEDEMBED_INDEX_ADMIN_TOKEN", GATEWAY_TOKEN)
        (tmp_path / "home").mkdir()
        settings = AdminSettings(home=tmp_path / "home", port=0)
        partners = PartnerKeys(settings)
        kept = partners.create(PartnerGrant("insurer-x", ("claims",), top_k_cap=5)).key
        gone = partners.create(PartnerGrant("lab-y", ("*",), score_release="coarse")).key
        partners.revoke(gone.key_id)
        parts = build_parts(settings)
        assert isinstance(parts.tokens, AdminTokenStore)
        _, secret = parts.tokens.create("viewer", AdminRole.AUDITOR)
        client = TestClient(create_admin_app(settings, parts=parts))
        _sign_in(client, secret)
        # Execute
        answer = client.get("/console/partners")
    # Assert
    assert answer.status_code == 200
    rows = re.findall(r"<tr>(.*?)</tr>", answer.text)
    insurer = next(r for r in rows if "<strong>insurer-x</strong>" in r)
    lab = next(r for r in rows if "<strong>lab-y</strong>" in r)
    assert f"<code>{kept.key_id}</code>" in insurer
    assert '<span class="badge badge-ok">active</span>' in insurer
    assert "<td>claims</td><td>5</td>" in insurer
    assert f"<code>{gone.key_id}</code>" in lab
    assert '<span class="badge badge-bad">revoked</span>' in lab
    assert "<td>coarse</td>" in lab
    assert "FEDEMBED_ADMIN_GATEWAY_URL" not in answer.text


def test_the_console_is_not_part_of_the_api_document(admin_client: TestClient) -> None:
    # Execute
    paths = admin_client.get("/openapi.json").json()["paths"]
    # Assert
    assert paths
    assert not [p for p in paths if p.startswith("/console")]


def test_the_plot_has_one_point_per_round_on_round_ticks() -> None:
    # Prepare
    points = [(0.0, 0.5), (1.0, 0.55), (2.0, float("nan")), (3.0, 0.61)]
    # Execute
    svg = line_plot(points, title="nDCG@10 <run>", x_label="round", y_label="nDCG@10")
    empty = line_plot([], title="none", x_label="round", y_label="nDCG@10")
    # Assert
    circles = [a for t, a in _parse(svg).tags if t == "circle"]
    assert [(a["data-x"], a["data-y"]) for a in circles] == [
        ("0", "0.5"),
        ("1", "0.55"),
        ("3", "0.61"),
    ]
    xs = [float(a["cx"] or 0) for a in circles]
    ys = [float(a["cy"] or 0) for a in circles]
    assert xs == sorted(xs)
    assert len(set(xs)) == 3
    assert ys[0] > ys[1] > ys[2]  # a higher value is drawn higher
    assert "<title>nDCG@10 &lt;run&gt;</title>" in svg
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert "<circle" not in empty
    assert "no data" in empty
    assert ticks(0.5, 0.61) == [0.5, 0.55, 0.6, 0.65]
    assert ticks(1, 3, count=3) == [1, 2, 3]
