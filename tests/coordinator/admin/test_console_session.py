"""The console's sign-in: a caller without a live token is sent to the login page, the
session cookie is strict, a wrong token is refused, and forms posted from elsewhere are
refused."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from coordinator.admin.console import COOKIE_NAME
from coordinator.admin.token_store import AdminTokenStore
from coordinator.admin.tokens import AdminRole
from tests.coordinator.admin.console_home import (
    PAGES,
    assert_console_headers,
    form_value,
    login_nonce,
    set_cookie_line,
)


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
            assert_console_headers(answer.headers)
            if cookie is not None:  # a stale cookie is dropped
                assert f"{COOKIE_NAME}=" in answer.headers["set-cookie"]
                assert "Max-Age=0" in answer.headers["set-cookie"]
        # a bearer header is the API's, not the console's
        admin_client.cookies.clear()
        assert admin_client.get(path, headers=bearer, follow_redirects=False).status_code == 303
    login = admin_client.get("/console/login")
    assert login.status_code == 200
    assert '<form method="post" action="/console/login">' in login.text
    assert_console_headers(login.headers)


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
        data={"token": secret + "x", "nonce": login_nonce(plain)},
        follow_redirects=False,
    )
    over_http = plain.post(
        "/console/login",
        data={"token": secret, "nonce": login_nonce(plain)},
        follow_redirects=False,
    )
    over_https = tls.post(
        "/console/login", data={"token": secret, "nonce": login_nonce(tls)}, follow_redirects=False
    )
    # Assert
    assert wrong.status_code == 401
    assert set_cookie_line(wrong, COOKIE_NAME) is None
    assert "That is not a live admin API token." in wrong.text
    assert_console_headers(wrong.headers)
    cookie = set_cookie_line(over_http, COOKIE_NAME)
    assert cookie is not None
    assert cookie.startswith(f"{COOKIE_NAME}={secret};")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/console", "samesite=strict"} <= attributes
    assert "secure" not in attributes
    secure_cookie = set_cookie_line(over_https, COOKIE_NAME)
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
    nonce = login_nonce(admin_client)
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
        data={"token": secret, "nonce": login_nonce(admin_client)},  # a refusal renews it
        headers=own,
        follow_redirects=False,
    )
    proof = form_value(admin_client.get("/console/runs").text, "proof")
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
        assert set_cookie_line(answer, COOKIE_NAME) is None
        assert_console_headers(answer.headers)
    assert accepted.status_code == 303
    assert set_cookie_line(accepted, COOKIE_NAME) is not None
    assert [answer.status_code for answer in forced] == [403, 403]
    assert after_forced.status_code == 200  # still signed in
    assert logout.status_code == 303
    assert logout.headers["location"] == "/console/login"
    session = set_cookie_line(logout, COOKIE_NAME)
    assert session is not None
    assert "Max-Age=0" in session
    assert after_logout.status_code == 303
