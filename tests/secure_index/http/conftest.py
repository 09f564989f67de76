"""A real index service process on loopback, with a collection and keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from secure_index.service.local_service import LocalIndexService, start_index_service

DIM = 16
COLLECTION = "claims"


@dataclass
class Deployment:
    service: LocalIndexService
    node_token: str
    node_key_id: str
    partner_token: str
    partner_key_id: str


def provision(service: LocalIndexService, *, burst: int = 1000, top_k_cap: int = 50) -> Deployment:
    with service.admin() as admin:
        r = admin.post("/v1/admin/collections", json={"name": COLLECTION, "dimension": DIM})
        assert r.status_code == 201, r.text
        admin.post("/v1/admin/collections", json={"name": "other", "dimension": DIM})
        node = admin.post(
            "/v1/admin/credentials", json={"role": "node", "name": "node-a", "scopes": [COLLECTION]}
        ).json()
        partner = admin.post(
            "/v1/admin/credentials",
            json={
                "role": "partner",
                "name": "insurer-x",
                "scopes": [COLLECTION],
                "top_k_cap": top_k_cap,
                "burst": burst,
                "rate_per_minute": 60_000,
            },
        ).json()
    return Deployment(service, node["token"], node["key_id"], partner["token"], partner["key_id"])


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    service = start_index_service(
        tmp_path / "svc", kek=secrets.token_bytes(32), extra_args=("--no-text-queries",)
    )
    try:
        yield provision(service)
    finally:
        service.stop()
