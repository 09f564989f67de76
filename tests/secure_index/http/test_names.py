"""Names over HTTP: whatever name a caller sends, in a path, a query or a JSON field, the
answer is a 422 with the standard error body, nothing is written outside the store's
folders, and the index and the gateway's store client refuse such names again."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
from index_client import routes
from index_client.names import InvalidNameError
from index_client.transport import ServiceTransport
from secure_index.errors import RequestError
from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.collection_spec import CollectionSpec
from secure_index.sealing import KeyFileKeks
from secure_index.service.ckks_backend import RemoteCkksStore
from secure_index.service.local_service import LocalIndexService, start_index_service
from secure_index.service.store_backend import RemoteStore

DIM = 16
DOCS, SEALED = "claims", "sealed"
BAD = [
    ".",
    "..",
    "x/../" + DOCS,
    "a b",
    "a\tb",
    "-a",
    "a.b",
    "é",
    "a" * 65,
    "a" * 513,
    "a" * 10_000,
]
LONG = "a" * 10_000


@dataclass
class Split:
    """A gateway and a store in separate processes, a node and a partner key."""

    gateway: LocalIndexService
    store: LocalIndexService
    store_token: str
    node_token: str
    partner_token: str


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    root = tmp_path_factory.mktemp("names")
    save_ckks_key(CkksSearchKey.generate(dimension=DIM), root / "ckks_search.key")
    token = secrets.token_urlsafe(24)
    env = {"FEDEMBED_INDEX_STORE_TOKEN": token}
    store = start_index_service(
        root / "store", kek=secrets.token_bytes(32), extra_args=("--role", "store"), env=env
    )
    try:
        gateway = start_index_service(
            root / "gateway",
            kek=secrets.token_bytes(32),
            extra_args=("--role", "gateway", "--store-url", store.url, "--no-text-queries",
                        "--ckks-key-file", str(root / "ckks_search.key")),
            env=env,
        )  # fmt: skip
        try:
            with gateway.admin_client() as admin:
                admin.create_collection(DOCS, DIM)
                admin.create_ckks_collection(SEALED)
                node = admin.issue_credential("node", "hospital-a", [DOCS, SEALED])
                partner = admin.issue_credential("partner", "insurer-x", [DOCS, SEALED])
            yield Split(gateway, store, token, node.token, partner.token)
        finally:
            gateway.stop()
    finally:
        store.stop()


def _segment(name: str) -> str:
    """One path segment as a client could send it ('.' and '..' escaped, not resolved)."""
    return "%2E" * len(name) if name in {".", ".."} else quote(name, safe="")


def _refused(response: httpx.Response, field: str, name: str = "") -> None:
    """A 422 naming the field and the rule; a '/' in a path segment matches no route."""
    if "/" in name:
        assert response.status_code in {404, 422}, response.text[:300]
    else:
        assert response.status_code == 422, response.text[:300]
        assert field in response.json()["error"]["problem"]
        assert "1 to 64 characters" in response.json()["error"]["problem"]
    assert response.json()["error"]["fix"]
    assert len(response.text) < 1000  # a 10,000-character name is not echoed back


def _folders(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*") if p.is_dir()}


@pytest.mark.parametrize("name", BAD)
def test_the_admin_cannot_create_a_collection_with_a_name_that_is_not_one(
    split: Split, name: str
) -> None:
    # Prepare: the adversary is an operator's script sending '..' or 'x/../claims'
    parent = split.store.data_dir.parent
    before = _folders(parent)
    # Execute
    with split.gateway.admin() as admin:
        at_rest = admin.post("/v1/admin/collections", json={"name": name, "dimension": DIM})
        ckks = admin.post("/v1/admin/ckks-collections", json={"name": name})
    # Assert: refused before anything is made; no folder, no evaluation keys anywhere new
    _refused(at_rest, "name")
    _refused(ckks, "name")
    assert _folders(parent) == before
    assert [p.parent.name for p in parent.rglob("evaluation.sealed")] == [SEALED]


@pytest.mark.parametrize("name", BAD)
@pytest.mark.parametrize(
    ("route", "who"),
    [
        (routes.DESCRIBE_COLLECTION, "partner"),
        (routes.QUERY, "partner"),
        (routes.UPSERT_DOCUMENTS, "node"),
        (routes.DELETE_DOCUMENTS, "node"),
        (routes.DELETE_BLOCK, "node"),
        (routes.SNAPSHOT, "admin"),
    ],
)
def test_a_name_in_a_gateway_path_is_a_422_never_a_500(
    split: Split, route: routes.Route, who: str, name: str
) -> None:
    # Prepare: keys scoped to one collection (a long name once made the audit log fail)
    token = {
        "partner": split.partner_token,
        "node": split.node_token,
        "admin": split.gateway.admin_token,
    }[who]
    path = route.template.replace("{collection}", _segment(name)).replace("{number}", "0")
    body = {"vector": [1.0] * DIM} if route == routes.QUERY else {"ids": ["d"]}
    # Execute
    with split.gateway.client(token) as client:
        response = client.request(route.method, path, json=body)
    # Assert
    _refused(response, "collection", name)


@pytest.mark.parametrize("name", BAD)
def test_a_name_in_a_store_path_or_query_is_a_422(split: Split, name: str) -> None:
    # Prepare: the store's caller sends an owner that climbs to another node's blocks
    block = f"/internal/v1/ckks/{SEALED}/blocks/{_segment(name)}/0"
    with split.store.client(split.store_token) as store:
        # Execute
        put = store.put(
            block, content=b"\x00", headers={"Content-Type": "application/octet-stream"}
        )
        deleted = store.delete(block)
        described = store.get(f"/internal/v1/collections/{_segment(name)}")
        scored = store.post(
            f"/internal/v1/ckks/{SEALED}/score", params={"owner": name}, content=b"x"
        )
    # Assert
    _refused(put, "owner", name)
    _refused(deleted, "owner", name)
    _refused(described, "name", name)
    _refused(scored, "owner")


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("name", {"role": "node", "name": "x/../hospital-a", "scopes": [DOCS]}),
        ("name", {"role": "partner", "name": "insurer x", "scopes": [DOCS]}),
        ("scopes", {"role": "partner", "name": "insurer-z", "scopes": [".."]}),
    ],
)
def test_keys_are_issued_only_to_names(split: Split, field: str, body: dict[str, object]) -> None:
    with split.gateway.admin() as admin:
        response = admin.post("/v1/admin/credentials", json=body)
    _refused(response, field)


def test_an_owner_filter_that_is_not_a_name_is_refused(split: Split) -> None:
    query = routes.QUERY.path(collection=DOCS)
    with split.gateway.client(split.partner_token) as partner:
        response = partner.post(query, json={"vector": [1.0] * DIM, "filters": {"owner": ".."}})
    _refused(response, "owner")


def test_the_gateways_store_clients_build_no_url_from_a_bad_name() -> None:
    # Prepare: a store address where nothing listens: a request would be a transport error
    remote = RemoteStore("http://127.0.0.1:9", token="t")
    ckks = RemoteCkksStore(ServiceTransport("http://127.0.0.1:9", "t"))
    # Execute, Assert: refused before any URL is built or any byte is sent
    with pytest.raises(InvalidNameError, match=re.escape("node name 'x/../hospital-a'")):
        ckks.delete_block(SEALED, "x/../hospital-a", 0)
    with pytest.raises(InvalidNameError, match=re.escape("collection name '..'")):
        remote.snapshot("..")
    with pytest.raises(InvalidNameError, match="10000 characters"):
        remote.stats(LONG)


@pytest.mark.parametrize("name", [".", "..", "../escape", "a/b", "claims\n", LONG])
def test_the_index_refuses_such_names_itself(tmp_path: Path, name: str) -> None:
    # Prepare: the CKKS collections live in root; '..' once wrote keys beside it
    root = tmp_path / "store" / "ckks"
    collections = CkksCollections(root, keks=KeyFileKeks.create(tmp_path / "kek.json"), tenant="t")
    # Execute, Assert: refused before the (here empty) evaluation context is even read
    with pytest.raises(RequestError, match="is not allowed"):
        CollectionSpec(name, DIM)
    with pytest.raises(RequestError, match="is not allowed"):
        collections.create(name, dimension=DIM, evaluation_context=b"")
    assert not any(p.is_file() for p in tmp_path.rglob("*") if p.name != "kek.json")
