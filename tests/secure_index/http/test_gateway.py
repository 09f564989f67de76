"""The gateway over real HTTP: uploads, queries, every client mistake, revocation, audit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from index_client import routes
from index_client.errors import PermissionDeniedError
from index_client.routes import Route
from secure_index.service.audit_log import verify_audit_log
from secure_index.service.settings import audit_path

COLLECTION, DIM = "claims", 16  # as provisioned by conftest.deployment
QUERY = routes.QUERY.path(collection=COLLECTION)
DOCUMENTS = routes.UPSERT_DOCUMENTS.path(collection=COLLECTION)
Deployment = Any


def _unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _upload(dep: Deployment, ids: list[str], vectors: np.ndarray) -> tuple[int, int]:
    with dep.service.gateway_client(dep.node_token) as node:
        receipt = node.upsert_documents(COLLECTION, ids, vectors, tags=[["t"]] * len(ids))
    return receipt.inserted, receipt.updated


def test_node_uploads_and_partner_finds_ids_owners_scores_only(deployment: Deployment) -> None:
    # Prepare
    x = _unit(50)
    first = _upload(deployment, [f"doc-{i}" for i in range(50)], x)
    again = _upload(deployment, [f"doc-{i}" for i in range(50)], x)  # idempotent
    # Execute: the raw answer, to see every field that crosses the wire
    with deployment.service.client(deployment.partner_token) as partner:
        r = partner.post(QUERY, json={"vector": x[7].tolist(), "k": 3})
    # Assert
    assert (first[0], again[0], again[1]) == (50, 0, 50)
    assert r.status_code == 200
    body = r.json()
    assert body["results"][0] == {
        "doc_id": "doc-7",
        "owner": "node-a",
        "rank": 1,
        "score": pytest.approx(1.0, abs=1e-4),
    }
    assert set(body) == {"collection", "k", "results"}
    assert all(set(hit) == {"doc_id", "owner", "rank", "score"} for hit in body["results"])
    assert [hit["rank"] for hit in body["results"]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("who", "route", "where", "body", "status", "words"),
    [
        (
            "none",
            routes.QUERY,
            {"collection": COLLECTION},
            {"vector": [0.1] * DIM},
            401,
            "missing API key",
        ),
        (
            "bogus",
            routes.QUERY,
            {"collection": COLLECTION},
            {"vector": [0.1] * DIM},
            401,
            "unknown",
        ),
        (
            "partner",
            routes.QUERY,
            {"collection": "other"},
            {"vector": [0.1] * DIM},
            403,
            "not scoped",
        ),
        (
            "partner",
            routes.UPSERT_DOCUMENTS,
            {"collection": COLLECTION},
            {"items": [{"id": "a", "vector": [0.1] * DIM}]},
            403,
            "partner key cannot",
        ),
        (
            "node",
            routes.QUERY,
            {"collection": COLLECTION},
            {"vector": [0.1] * DIM},
            403,
            "node key cannot",
        ),
        (
            "partner",
            routes.QUERY,
            {"collection": COLLECTION},
            {"vector": [0.1] * DIM, "k": 51},
            403,
            "cap of 50",
        ),
        (
            "partner",
            routes.QUERY,
            {"collection": COLLECTION},
            {"vector": [0.1] * 3},
            422,
            "dimensions",
        ),
        (
            "partner",
            routes.QUERY,
            {"collection": COLLECTION},
            {"vector": [0.1] * DIM, "text": "x"},
            422,
            "exactly one",
        ),
        (
            "partner",
            routes.QUERY,
            {"collection": COLLECTION},
            {"vector": [0.0] * DIM},
            422,
            "zero",
        ),
        (
            "partner",
            routes.QUERY,
            {"collection": COLLECTION},
            {"text": "hello"},
            422,
            "does not embed text",
        ),
        (
            "partner",
            routes.QUERY,
            {"collection": COLLECTION},
            {"vector": "nope"},
            422,
            "vector",
        ),
        (
            "node",
            routes.UPSERT_DOCUMENTS,
            {"collection": COLLECTION},
            {"items": [{"id": "bad id", "vector": [0.1] * DIM}]},
            422,
            "id",
        ),
        (
            "node",
            routes.UPSERT_DOCUMENTS,
            {"collection": COLLECTION},
            {"items": [{"id": "a", "vector": [0.1] * 5}]},
            422,
            "dimension",
        ),
        (
            "admin",
            routes.CREATE_COLLECTION,
            {},
            {"name": COLLECTION, "dimension": DIM},
            409,
            "already exists",
        ),
        ("admin", routes.SNAPSHOT, {"collection": "missing"}, None, 404, "does not exist"),
        ("partner", Route("GET", "/v1/nothing-here"), {}, None, 404, "Not Found"),
    ],
)
def test_client_mistakes_get_clear_4xx(
    module_deployment: Deployment,
    who: str,
    route: Route,
    where: dict[str, str],
    body: object,
    status: int,
    words: str,
) -> None:
    token = {
        "none": None,
        "bogus": "fek_000000000000_" + "x" * 43,
        "partner": module_deployment.partner_token,
        "node": module_deployment.node_token,
        "admin": module_deployment.service.admin_token,
    }[who]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=module_deployment.service.url, timeout=30) as client:
        r = client.request(route.method, route.path(**where), json=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert words.lower() in (error["problem"] + error["expected"]).lower()
    assert error["fix"]


def test_oversized_bodies_get_413(module_deployment: Deployment) -> None:
    deployment = module_deployment
    items = [{"id": f"d{i}", "vector": [0.5] * DIM} for i in range(1001)]
    with deployment.service.client(deployment.node_token) as node:
        batch = node.put(DOCUMENTS, json={"items": items})
        huge = node.put(
            DOCUMENTS,
            content=b'{"items": [' + b" " * (9 << 20) + b"]}",
            headers={"Content-Type": "application/json"},
        )
    assert batch.status_code == 413
    assert "at most 1000" in batch.json()["error"]["expected"]
    assert huge.status_code == 413


def test_rate_limit_answers_429_with_retry_after(
    deployment_factory: Callable[..., Deployment],
) -> None:
    dep = deployment_factory(burst=5, rate_per_minute=6)
    with dep.service.client(dep.partner_token) as partner:
        codes = [partner.post(QUERY, json={"vector": [0.1] * DIM}) for _ in range(8)]
    assert [r.status_code for r in codes[:5]] == [200] * 5
    limited = [r for r in codes if r.status_code == 429]
    assert limited
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert "rate limit" in limited[0].json()["error"]["problem"]


def test_revocation_from_the_cli_takes_effect_at_once(deployment: Deployment) -> None:
    # Prepare
    with deployment.service.client(deployment.partner_token) as partner:
        before = partner.post(QUERY, json={"vector": [0.1] * DIM})
        # Execute: another process revokes the key while the service runs
        revoke = subprocess.run(
            [sys.executable, "-m", "fedembed", "partner", "revoke", deployment.partner_key_id,
             "--data-dir", str(deployment.service.data_dir)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        after = partner.post(QUERY, json={"vector": [0.1] * DIM})
    # Assert
    assert before.status_code == 200
    assert revoke.returncode == 0, revoke.stderr
    assert json.loads(revoke.stdout)["revoked_at"]
    assert after.status_code == 401


def test_audit_log_records_every_decision_and_verifies(deployment: Deployment) -> None:
    # Prepare
    x = _unit(5, seed=3)
    _upload(deployment, [f"doc-{i}" for i in range(5)], x)
    with deployment.service.gateway_client(deployment.partner_token) as partner:
        partner.query(COLLECTION, vector=x[0], k=2)
        with pytest.raises(PermissionDeniedError, match="not scoped"):
            partner.query("other", vector=x[0])
    path = audit_path(deployment.service.data_dir)
    # Execute
    records = [json.loads(line) for line in path.read_text().splitlines()]
    cli = subprocess.run(
        [sys.executable, "-m", "fedembed", "index", "verify-audit",
         "--data-dir", str(deployment.service.data_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # Assert
    actions = [(r["action"], r["decision"]) for r in records]
    assert ("upload", "allow") in actions
    assert ("query", "allow") in actions
    assert ("query", "deny:scope") in actions
    query = next(r for r in records if r["action"] == "query" and r["decision"] == "allow")
    assert query["detail"]["results"][0] == "doc-0"
    assert query["actor"] == deployment.partner_key_id
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert verify_audit_log(path).ok
    # an edited entry is detected by the CLI
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"allow"', '"deny:scope"', 1)
    path.write_text("\n".join(lines) + "\n")
    tampered = subprocess.run(
        [sys.executable, "-m", "fedembed", "index", "verify-audit",
         "--data-dir", str(deployment.service.data_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tampered.returncode == 1


def test_nothing_plaintext_in_the_store_files(deployment: Deployment) -> None:
    # Prepare
    x = _unit(40, seed=5)
    ids = [f"patient-record-{i}" for i in range(40)]
    _upload(deployment, ids, x)
    with deployment.service.admin_client() as admin:
        assert admin.snapshot(COLLECTION) >= 1
    _upload(deployment, [f"{i}-late" for i in ids], x[::-1].copy())
    # Execute
    deployment.service.stop()
    store_files = [p for p in (deployment.service.data_dir / "store").rglob("*") if p.is_file()]
    every_file = [p for p in deployment.service.data_dir.rglob("*") if p.is_file()]
    # Assert: no vector bytes anywhere; no ids in the store (the audit log lists result ids)
    assert store_files
    for path in every_file:
        blob = path.read_bytes()
        assert not any(x[i].tobytes()[:16] in blob for i in range(40)), path
    for path in store_files:
        assert b"patient-record" not in path.read_bytes(), path
