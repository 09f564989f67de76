"""Partner keys through the admin API, against a real gateway served on loopback: the key
created works at the gateway, the revoked one is refused, the token is shown once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from coordinator.admin.errors import AdminNotFoundError, AdminUnavailableError
from coordinator.admin.partners import PartnerGrant, PartnerKeys
from coordinator.admin.settings import AdminSettings
from coordinator.admin.tokens import AdminRole
from index_client.admin_client import AdminClient
from index_client.errors import AuthenticationError
from index_client.gateway_client import GatewayClient
from tests.coordinator.admin.serving import serving_gateway

DIM = 4
COLLECTION = "claims"
GATEWAY_TOKEN = "gateway-admin-token-of-at-least-32-characters"


@pytest.fixture
def gateway_url(tmp_path: Path) -> Iterator[str]:
    """A real gateway (encrypted store, key store, audit log) with a collection of 3 documents."""
    with serving_gateway(tmp_path / "gateway", GATEWAY_TOKEN) as url:
        with AdminClient(url, GATEWAY_TOKEN) as admin:
            admin.create_collection(COLLECTION, DIM)
            node = admin.issue_credential("node", "node-a", [COLLECTION])
        with GatewayClient(url, node.token) as client:
            vectors = np.eye(DIM, dtype=np.float32)[:3]
            client.upsert_documents(COLLECTION, ["d0", "d1", "d2"], vectors)
        yield url


@pytest.fixture
def admin_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway_url: str
) -> AdminSettings:
    """The admin API's settings, naming the gateway (overrides the core's fixture)."""
    for variable in ("FEDEMBED_ADMIN_TRAIL_KEY", "FEDEMBED_ADMIN_METRICS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FEDEMBED_ADMIN_GATEWAY_URL", gateway_url)
    monkeypatch.setenv("FEDEMBED_INDEX_ADMIN_TOKEN", GATEWAY_TOKEN)
    home = tmp_path / "home"
    home.mkdir()
    return AdminSettings(home=home, port=0)


def _files_hold(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_a_partner_key_created_works_and_once_revoked_is_refused(
    admin_client: TestClient,
    admin_auth: dict[AdminRole, dict[str, str]],
    admin_settings: AdminSettings,
    gateway_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare
    caplog.set_level(logging.DEBUG)
    grant = {
        "name": "insurer-x",
        "scopes": [COLLECTION],
        "top_k_cap": 2,
        "vector_queries": True,
        "score_release": "coarse",
        "query_budget": 50,
    }
    # Execute: create (admin), query at the gateway, list (auditor), revoke (admin)
    created = admin_client.post("/v1/partners", json=grant, headers=admin_auth[AdminRole.ADMIN])
    body = created.json()
    token, key_id = body["token"], body["key"]["key_id"]
    with GatewayClient(gateway_url, token) as partner:
        found = partner.query(COLLECTION, vector=[0.0, 1.0, 0.0, 0.0], k=2)
    listed = admin_client.get("/v1/partners", headers=admin_auth[AdminRole.AUDITOR])
    revoked = admin_client.delete(f"/v1/partners/{key_id}", headers=admin_auth[AdminRole.ADMIN])
    with GatewayClient(gateway_url, token) as partner, pytest.raises(AuthenticationError) as err:
        partner.query(COLLECTION, vector=[0.0, 1.0, 0.0, 0.0], k=2)
    active = admin_client.get(
        "/v1/partners?include_revoked=false", headers=admin_auth[AdminRole.OPERATOR]
    )
    # Assert: the grant reached the gateway and the key worked until revoked
    assert created.status_code == 201, created.text
    assert body["key"]["scopes"] == [COLLECTION]
    assert (body["key"]["top_k_cap"], body["key"]["score_release"]) == (2, "coarse")
    assert (body["key"]["vector_queries"], body["key"]["query_budget"]) == (True, 50)
    assert found.hits[0].doc_id == "d1"
    assert listed.status_code == 200
    assert [p["key_id"] for p in listed.json()["partners"]] == [key_id]  # not the node key
    assert "token" not in listed.json()["partners"][0]
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert err.value.status == 401
    assert active.json() == {"partners": []}
    # ... and the token was never stored nor logged by the admin API; the trail has both
    assert token not in listed.text
    assert token not in revoked.text
    assert _files_hold(admin_settings.home, token) == []
    assert token not in caplog.text
    trail = admin_settings.consortium.state / "trail.jsonl"
    actions = [json.loads(line)["action"] for line in trail.read_text().splitlines()]
    assert actions.count("partner.create") == 1
    assert actions.count("partner.revoke") == 1
    assert key_id in trail.read_text()


def test_partner_routes_need_their_roles(
    admin_client: TestClient, admin_auth: dict[AdminRole, dict[str, str]]
) -> None:
    # Prepare
    grant = {"name": "insurer-y", "scopes": [COLLECTION]}
    # Execute
    as_operator = admin_client.post("/v1/partners", json=grant, headers=admin_auth["operator"])
    as_auditor = admin_client.post("/v1/partners", json=grant, headers=admin_auth["auditor"])
    anonymous = admin_client.get("/v1/partners")
    revoke_as_operator = admin_client.delete(
        "/v1/partners/0123456789ab", headers=admin_auth["operator"]
    )
    listed = admin_client.get("/v1/partners", headers=admin_auth["admin"])
    # Assert: nothing was created
    assert (as_operator.status_code, as_auditor.status_code) == (403, 403)
    assert (anonymous.status_code, revoke_as_operator.status_code) == (401, 403)
    assert listed.json() == {"partners": []}


def test_mistakes_are_answered_in_the_api_words(
    admin_client: TestClient, admin_auth: dict[AdminRole, dict[str, str]], gateway_url: str
) -> None:
    # Prepare: a node key exists at the gateway (it is no partner key)
    with AdminClient(gateway_url, GATEWAY_TOKEN) as admin:
        node_key = next(k.key_id for k in admin.credentials() if k.role == "node")
    auth = admin_auth[AdminRole.ADMIN]
    # Execute
    unknown = admin_client.delete("/v1/partners/0123456789ab", headers=auth)
    node = admin_client.delete(f"/v1/partners/{node_key}", headers=auth)
    bad_release = admin_client.post(
        "/v1/partners", json={"name": "p", "scopes": ["claims"], "score_release": "x"}, headers=auth
    )
    extra = admin_client.post(
        "/v1/partners", json={"name": "p", "scopes": ["claims"], "token": "mine"}, headers=auth
    )
    no_scope = admin_client.post("/v1/partners", json={"name": "p", "scopes": []}, headers=auth)
    # Assert
    assert (unknown.status_code, node.status_code) == (404, 404)
    assert "GET /v1/partners" in node.json()["error"]["expected"]
    for answer in (bad_release, extra, no_scope):
        assert answer.status_code == 422
        assert set(answer.json()["error"]) == {"problem", "expected", "fix"}


def test_a_gateway_not_configured_or_refusing_the_token_is_a_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway_url: str
) -> None:
    # Prepare: no gateway at all, and a gateway with another admin token
    monkeypatch.delenv("FEDEMBED_ADMIN_GATEWAY_URL", raising=False)
    monkeypatch.delenv("FEDEMBED_INDEX_ADMIN_TOKEN", raising=False)
    unconfigured = PartnerKeys(AdminSettings(home=tmp_path))
    monkeypatch.setenv("FEDEMBED_ADMIN_GATEWAY_URL", gateway_url)
    monkeypatch.setenv("FEDEMBED_INDEX_ADMIN_TOKEN", "another-token-of-at-least-32-characters!")
    wrong_token = PartnerKeys(AdminSettings(home=tmp_path))
    monkeypatch.setenv("FEDEMBED_INDEX_ADMIN_TOKEN", GATEWAY_TOKEN)
    right = PartnerKeys(AdminSettings(home=tmp_path))
    # Execute / Assert
    with pytest.raises(AdminUnavailableError) as missing:
        unconfigured.list()
    assert "FEDEMBED_ADMIN_GATEWAY_URL" in missing.value.fix
    with pytest.raises(AdminUnavailableError) as refused:
        wrong_token.create(PartnerGrant("insurer-z", (COLLECTION,)))
    assert "FEDEMBED_INDEX_ADMIN_TOKEN" in refused.value.fix
    with pytest.raises(AdminNotFoundError):
        right.revoke("0123456789ab")
    assert [k.name for k in right.list()] == []
