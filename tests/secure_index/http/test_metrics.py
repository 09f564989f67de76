"""Prometheus /metrics on the gateway and the store, over real HTTP: counts move, auth
is required, and nothing secret (tokens, names, collection names) is in the output."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from index_client import routes
from index_client.admin_client import AdminClient
from index_client.gateway_client import GatewayClient
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import CredentialStore
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.store_app import create_store_app
from tests.serving import serving

DIM = 4
COLLECTION = "claims-secret-name"
PARTNER = "insurer-hidden"
ADMIN_TOKEN = "gateway-admin-token-of-at-least-32-characters"
STORE_TOKEN = "store-token-of-at-least-32-characters-long"
QUERY_TEMPLATE = routes.QUERY.template


@dataclass
class Served:
    url: str
    store: IndexStore


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Served]:
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    store = IndexStore(tmp_path / "store", keks=keks, tenant="t", background=False)

    app = create_gateway_app(
        backend=store,
        credentials=CredentialStore(tmp_path / "credentials.sqlite"),
        audit=AuditLog(tmp_path / "audit" / "audit.jsonl", keks=keks),
        embedder=QueryEmbedder(None),
        admin_token=ADMIN_TOKEN,
        limits=GatewayLimits(max_body_bytes=1 << 20, max_batch=100, max_k=100),
    )
    try:
        with serving(app) as url:
            yield Served(url, store)
    finally:
        store.close()


def _scrape(
    url: str, token: str
) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    answer = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    return answer.text, samples


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_gateway_counts_queries_denials_and_key_states_without_secrets(gateway: Served) -> None:
    # Prepare: a collection, a node's documents and a partner key that may send vectors
    with AdminClient(gateway.url, ADMIN_TOKEN) as admin:
        admin.create_collection(COLLECTION, DIM)
        node = admin.issue_credential("node", "node-a", [COLLECTION])
        partner = admin.issue_credential(
            "partner", PARTNER, [COLLECTION], vector_queries=True, top_k_cap=3
        )
        spare = admin.issue_credential("partner", "spare-partner", [COLLECTION])
        admin.revoke_credential(spare.key.key_id)
    with GatewayClient(gateway.url, node.token) as client:
        client.upsert_documents(COLLECTION, ["d0", "d1", "d2"], np.eye(DIM, dtype=np.float32)[:3])
    _, before = _scrape(gateway.url, ADMIN_TOKEN)
    query_path = routes.QUERY.path(collection=COLLECTION)
    # Execute: two answered queries, one over the key's cap (403), one with a wrong key (401)
    with GatewayClient(gateway.url, partner.token) as client:
        for _ in range(2):
            client.query(COLLECTION, vector=[1.0, 0.0, 0.0, 0.0], k=2)
    with httpx.Client(base_url=gateway.url) as raw:
        over_cap = raw.post(
            query_path,
            json={"vector": [1.0, 0.0, 0.0, 0.0], "k": 5},
            headers={"Authorization": f"Bearer {partner.token}"},
        )
        wrong_key = raw.post(
            query_path,
            json={"vector": [1.0, 0.0, 0.0, 0.0], "k": 1},
            headers={"Authorization": f"Bearer {spare.token}"},  # revoked
        )
    text, after = _scrape(gateway.url, ADMIN_TOKEN)
    # Assert: the counters moved by exactly what was sent
    assert (over_cap.status_code, wrong_key.status_code) == (403, 401)
    key_id = partner.key.key_id
    answered = "fedembed_gateway_partner_queries_answered_total"
    assert _value(after, answered, key_id=key_id) - _value(before, answered, key_id=key_id) == 2
    requests = "fedembed_gateway_requests_total"
    ok = {"route": QUERY_TEMPLATE, "method": "POST", "status": "200"}
    assert _value(after, requests, **ok) - _value(before, requests, **ok) == 2
    denials = "fedembed_gateway_denials_total"
    for status in ("401", "403"):
        labels = {"route": QUERY_TEMPLATE, "status": status}
        assert _value(after, denials, **labels) - _value(before, denials, **labels) == 1
    latency = "fedembed_gateway_request_duration_seconds_count"
    assert _value(after, latency, route=QUERY_TEMPLATE, method="POST") == 4
    keys = "fedembed_gateway_keys"
    assert _value(after, keys, role="partner", state="active") == 1
    assert _value(after, keys, role="partner", state="revoked") == 1
    assert _value(after, keys, role="node", state="active") == 1
    # ... and no token, secret, partner name or collection name is in the output
    for secret in (partner.token, spare.token, node.token, ADMIN_TOKEN, PARTNER, COLLECTION):
        assert secret not in text
    # the secret after "fek_<key id>_" (URL-safe base64, so it may itself hold "_")
    assert partner.token.split("_", 2)[2] not in text


def test_gateway_metrics_need_the_admin_token(gateway: Served) -> None:
    # Prepare: a partner key (valid for queries, not for metrics)
    with AdminClient(gateway.url, ADMIN_TOKEN) as admin:
        admin.create_collection(COLLECTION, DIM)
        partner = admin.issue_credential("partner", PARTNER, [COLLECTION])
    # Execute
    with httpx.Client(base_url=gateway.url) as raw:
        anonymous = raw.get("/metrics")
        as_partner = raw.get("/metrics", headers={"Authorization": f"Bearer {partner.token}"})
        posted = raw.post("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    _, samples = _scrape(gateway.url, ADMIN_TOKEN)
    # Assert: 401 in the standard error form, naming the token to use
    assert (anonymous.status_code, as_partner.status_code, posted.status_code) == (401, 401, 405)
    assert "FEDEMBED_INDEX_ADMIN_TOKEN" in anonymous.json()["error"]["expected"]
    assert "fedembed" not in anonymous.text.split("error")[0]  # no exposition before auth
    denied = {"route": "/metrics", "status": "401"}
    assert _value(samples, "fedembed_gateway_denials_total", **denied) == 2


def test_store_metrics_need_the_store_token_and_count_requests(tmp_path: Path) -> None:
    # Prepare: a store app over a real encrypted index
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    index = IndexStore(tmp_path / "store", keks=keks, tenant="t", background=False)
    app = create_store_app(index, token=STORE_TOKEN, max_body_bytes=1 << 20)
    try:
        with serving(app) as url, httpx.Client(base_url=url) as raw:
            # Execute: one listing with the token, one without, then scrape
            listed = raw.get(
                routes.STORE_LIST.path(), headers={"Authorization": f"Bearer {STORE_TOKEN}"}
            )
            refused = raw.get(routes.STORE_LIST.path())
            anonymous = raw.get("/metrics")
            text, samples = _scrape(url, STORE_TOKEN)
    finally:
        index.close()
    # Assert
    assert (listed.status_code, refused.status_code, anonymous.status_code) == (200, 401, 401)
    assert "FEDEMBED_INDEX_STORE_TOKEN" in anonymous.json()["error"]["expected"]
    template = routes.STORE_LIST.template
    requests = "fedembed_store_requests_total"
    assert _value(samples, requests, route=template, method="GET", status="200") == 1
    assert _value(samples, "fedembed_store_denials_total", route=template, status="401") == 1
    assert STORE_TOKEN not in text
    assert "fedembed_gateway" not in text  # a registry of its own
