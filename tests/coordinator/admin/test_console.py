"""The admin API's web console: every page from a prepared consortium home
(:mod:`tests.coordinator.admin.console_home`), the security headers, escaping of names,
the partners page over a real gateway, and the server-drawn nDCG@10 plot.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from coordinator.admin.app import create_admin_app
from coordinator.admin.console import escape, router, tag
from coordinator.admin.console.svg_plot import line_plot, ticks
from coordinator.admin.partners import PartnerGrant, PartnerKeys
from coordinator.admin.server import build_parts
from coordinator.admin.settings import AdminSettings
from coordinator.admin.token_store import AdminTokenStore
from coordinator.admin.tokens import AdminRole
from tests.coordinator.admin.console_home import (
    MEMBERS,
    NDCG,
    PAGES,
    REVOKED,
    SCRIPT,
    assert_console_headers,
    sign_in,
)
from tests.coordinator.admin.serving import serving_gateway

GATEWAY_TOKEN = "gateway-admin-token-of-at-least-32-characters"


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


def test_every_page_shows_the_consortium_with_a_strict_csp(
    admin_client: TestClient, admin_tokens: dict[AdminRole, str], consortium: dict[str, Any]
) -> None:
    # Prepare
    sign_in(admin_client, admin_tokens[AdminRole.AUDITOR])
    # Execute
    pages = {path: admin_client.get(path) for path in PAGES}
    css = admin_client.get("/console/static/console.css")
    # Assert: every page answers, under the console's headers, with no script and
    # nothing loaded from elsewhere
    for path, answer in pages.items():
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["content-type"].startswith("text/html")
        assert_console_headers(answer.headers)
        elements = _parse(answer.text)
        assert not [t for t, _ in elements.tags if t in ("script", "iframe", "object")], path
        assert not [a for _, a in elements.tags if "style" in a], path  # no inline style
        for _, attrs in elements.tags:
            for name in ("src", "href", "action"):
                value = attrs.get(name) or ""
                assert not value.startswith(("http:", "https:", "//")), (path, value)
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert_console_headers(css.headers)
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
    sign_in(admin_client, admin_tokens[AdminRole.OPERATOR])
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
    assert_console_headers(unknown.headers)


def test_names_and_reasons_are_shown_as_text_never_as_markup(
    admin_client: TestClient, admin_tokens: dict[AdminRole, str], consortium: dict[str, Any]
) -> None:
    # Prepare: a node registered under a name holding <script>, refusing with one
    sign_in(admin_client, admin_tokens[AdminRole.ADMIN])
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
    # Assert: every other console route is a page of PAGES (test_console_session visits each)
    assert routes == public | checked


def test_the_partners_page_lists_the_gateways_partner_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: partner keys issued and revoked at a real gateway through the admin API's
    # partner service
    for variable in ("FEDEMBED_ADMIN_TRAIL_KEY", "FEDEMBED_ADMIN_METRICS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    with serving_gateway(tmp_path / "gateway", GATEWAY_TOKEN) as url:
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
        sign_in(client, secret)
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
