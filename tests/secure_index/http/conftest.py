"""A real index service process on loopback, with a collection and keys."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from secure_index.service.local_service import KEK_ENV, LocalIndexService, start_index_service

DIM = 16
COLLECTION = "claims"


@dataclass
class Deployment:
    service: LocalIndexService
    node_token: str
    node_key_id: str
    partner_token: str
    partner_key_id: str
    collection: str = COLLECTION
    dim: int = DIM


def provision(
    service: LocalIndexService,
    *,
    burst: int = 1000,
    top_k_cap: int = 50,
    rate_per_minute: int = 60_000,
) -> Deployment:
    with service.admin_client() as admin:
        admin.create_collection(COLLECTION, DIM)
        admin.create_collection("other", DIM)
        node = admin.issue_credential("node", "node-a", [COLLECTION])
        partner = admin.issue_credential(
            "partner",
            "insurer-x",
            [COLLECTION],
            top_k_cap=top_k_cap,
            burst=burst,
            rate_per_minute=rate_per_minute,
            vector_queries=True,  # these tests search with vectors and read exact scores
            score_release="exact",
        )
    return Deployment(service, node.token, node.key.key_id, partner.token, partner.key.key_id)


@pytest.fixture
def deployment_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Deployment]]:
    services: list[LocalIndexService] = []

    def make(**limits: int) -> Deployment:
        kek = secrets.token_bytes(32)
        # the operator's shell holds the KEK: the CLI's key operations and verify-audit
        # need it (the audit anchor is keyed); the latest service's KEK wins
        monkeypatch.setenv(KEK_ENV, base64.b64encode(kek).decode())
        service = start_index_service(
            tmp_path / f"svc{len(services)}", kek=kek, extra_args=("--no-text-queries",)
        )
        services.append(service)
        return provision(service, **limits)

    try:
        yield make
    finally:
        for service in services:
            service.stop()


@pytest.fixture
def deployment(deployment_factory: Callable[..., Deployment]) -> Deployment:
    return deployment_factory()


@pytest.fixture(scope="session")
def provision_deployment() -> Callable[..., Deployment]:
    """The provisioning step, for module-scoped fixtures (conftest is not importable)."""
    return provision


@pytest.fixture(scope="module")
def module_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One service shared by a module's read-mostly tests."""
    kek = secrets.token_bytes(32)
    service = start_index_service(
        tmp_path_factory.mktemp("gateway") / "svc", kek=kek, extra_args=("--no-text-queries",)
    )
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(KEK_ENV, base64.b64encode(kek).decode())  # as in deployment_factory
            yield provision(service)
    finally:
        service.stop()
