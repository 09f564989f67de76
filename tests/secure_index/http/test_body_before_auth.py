"""An unauthenticated client cannot make the gateway or the store read its body: the
credential is checked from the headers first, and a request without a valid one is
answered 401 before a byte of its body is read.

Two views: the ASGI app with a body source that counts the bytes taken from it (the exact
measure), and the real service over a socket, sent a 7.4 MiB body of which only 64 KiB
ever arrive (a server that read the body would wait for the rest)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from index_client import routes
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog
from secure_index.service.credentials import CredentialRole, CredentialStore
from secure_index.service.gateway_access import GatewayLimits
from secure_index.service.gateway_app import create_gateway_app
from secure_index.service.query_embedder import QueryEmbedder
from secure_index.service.store_app import create_store_app
from tests.secure_index.http.raw_http import raw_request

Deployment = Any  # the conftest's deployment (a conftest is not importable)

BODY_BYTES = 7_759_462  # 7.4 MiB, under the 8 MiB body limit
CHUNK = 1 << 16
ADMIN_TOKEN = "admin-" + "a" * 40
STORE_TOKEN = "store-" + "s" * 40
UPLOAD_PATH = routes.UPSERT_DOCUMENTS.path(collection="claims")
STORE_UPSERT_PATH = routes.STORE_UPSERT.path(name="claims")


@dataclass
class Counted:
    """What the app did with a request whose body is BODY_BYTES of JSON-ish bytes."""

    status: int
    body_bytes_read: int


def _send(app: FastAPI, method: str, path: str, authorization: str | None) -> Counted:
    """Drive ``app`` with a body source that counts every byte the app takes from it."""
    read, remaining, status = 0, BODY_BYTES, 0

    async def receive() -> dict[str, object]:
        nonlocal read, remaining
        if remaining == 0:
            return {"type": "http.disconnect"}
        size = min(CHUNK, remaining)
        read, remaining = read + size, remaining - size
        return {"type": "http.request", "body": b"x" * size, "more_body": remaining > 0}

    async def send(message: dict[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(str(message["status"]))

    headers = [
        (b"content-length", str(BODY_BYTES).encode()),
        (b"content-type", b"application/json"),
    ]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode("latin-1")))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8100),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return Counted(status, read)


@dataclass
class Apps:
    gateway: FastAPI
    store: FastAPI
    node_token: str


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Apps]:
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    index = IndexStore(tmp_path / "store", keks=keks, tenant="t", background=False)
    credentials = CredentialStore(tmp_path / "credentials.sqlite")
    _, node_token = credentials.create(role=CredentialRole.NODE, name="n", scopes=["claims"])
    audit = AuditLog(tmp_path / "audit" / "audit.jsonl", keks=keks)
    limits = GatewayLimits(max_body_bytes=8 << 20, max_batch=100, max_k=100)
    gateway = create_gateway_app(
        backend=index,
        credentials=credentials,
        audit=audit,
        embedder=QueryEmbedder(None),
        admin_token=ADMIN_TOKEN,
        limits=limits,
    )
    store = create_store_app(index, token=STORE_TOKEN, max_body_bytes=8 << 20)
    try:
        yield Apps(gateway, store, node_token)
    finally:
        audit.close()
        index.close()


@pytest.mark.parametrize(
    ("method", "path", "authorization"),
    [
        ("PUT", UPLOAD_PATH, None),
        ("PUT", UPLOAD_PATH, "Bearer "),
        ("PUT", UPLOAD_PATH, "Bearer fek_000000000000_" + "A" * 43),
        ("POST", "/v1/collections/claims/query", "Basic dXNlcjpwYXNz"),
        ("POST", "/v1/admin/collections", "Bearer not-the-admin-token"),
        ("POST", "/v1/admin/collections", None),
        ("PUT", "/v1/collections/claims/blocks/0", None),  # the 256 MiB CKKS route
    ],
)
def test_the_gateway_answers_401_without_reading_the_body(
    apps: Apps, method: str, path: str, authorization: str | None
) -> None:
    counted = _send(apps.gateway, method, path, authorization)
    assert counted == Counted(401, 0)


def test_the_store_answers_401_without_reading_the_body(apps: Apps) -> None:
    for authorization in (None, "Bearer ", "Bearer " + "s" * 46, f"Bearer  {STORE_TOKEN}"):
        counted = _send(apps.store, "POST", STORE_UPSERT_PATH, authorization)
        assert counted == Counted(401, 0)


def test_with_a_valid_credential_the_body_is_read(apps: Apps) -> None:
    # The control: the counter does see a body that is read (then refused as invalid)
    gateway = _send(apps.gateway, "PUT", UPLOAD_PATH, f"Bearer {apps.node_token}")
    store = _send(apps.store, "POST", STORE_UPSERT_PATH, f"Bearer {STORE_TOKEN}")
    assert gateway == Counted(422, BODY_BYTES)
    assert store == Counted(422, BODY_BYTES)


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Bearer fek_wrong"])
def test_the_running_service_refuses_before_the_body_arrives(
    module_deployment: Deployment, authorization: str | None
) -> None:
    # Prepare: a 7.4 MiB upload of which only the first 64 KiB is ever sent
    headers = [] if authorization is None else [("Authorization", authorization)]
    # Execute: the server must answer without the rest (else this waits, then fails)
    answer = raw_request(
        module_deployment.service.url,
        "PUT",
        UPLOAD_PATH,
        headers,
        declared_length=BODY_BYTES,
        body=b"[" * CHUNK,
    )
    # Assert
    assert answer.status == 401
    assert answer.headers["connection"] == "close"
    assert answer.problem()  # the standard error body
