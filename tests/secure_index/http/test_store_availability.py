"""Through a real service: one name space for every collection kind (409 either way, also
after a restart), and one broken collection answers 503 naming its problem while the
others keep serving; the store's health answer lists every broken collection, of any
kind, with its problem."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
from index_client import routes
from secure_index.index.ckks_collections import EVALUATION_FILE
from secure_index.service.local_service import LocalIndexService, start_index_service

DIM = 16


def _start(data: Path, kek: bytes, key_file: Path) -> LocalIndexService:
    return start_index_service(
        data, kek=kek, extra_args=("--no-text-queries", "--ckks-key-file", str(key_file))
    )


def test_collection_names_are_one_space_and_a_broken_collection_stays_alone(
    tmp_path: Path,
) -> None:
    # Prepare: a service with a CKKS key, one collection of each kind
    key_file = tmp_path / "ckks_search.key"
    save_ckks_key(CkksSearchKey.generate(dimension=DIM), key_file)
    kek = secrets.token_bytes(32)
    data = tmp_path / "svc"
    service = _start(data, kek, key_file)
    try:
        with service.admin() as admin:
            assert (
                admin.post(
                    "/v1/admin/collections", json={"name": "claims", "dimension": DIM}
                ).status_code
                == 201
            )
            assert (
                admin.post(
                    "/v1/admin/collections", json={"name": "other", "dimension": DIM}
                ).status_code
                == 201
            )
            assert (
                admin.post("/v1/admin/ckks-collections", json={"name": "sealed"}).status_code == 201
            )
            # Execute / Assert: the same name in the other kind is refused both ways
            ckks_over_hnsw = admin.post("/v1/admin/ckks-collections", json={"name": "claims"})
            hnsw_over_ckks = admin.post(
                "/v1/admin/collections", json={"name": "sealed", "dimension": DIM}
            )
    finally:
        service.stop()
    assert ckks_over_hnsw.status_code == 409
    assert "'claims'" in ckks_over_hnsw.json()["error"]["problem"]
    assert hnsw_over_ckks.status_code == 409
    assert "'sealed'" in hnsw_over_ckks.json()["error"]["problem"]
    # Prepare: "claims" loses every manifest while the service is down (half-made)
    for path in (data / "store" / "collections" / "claims").glob("manifest-*.sealed"):
        path.unlink()
    restarted = _start(data, kek, key_file)
    try:
        with restarted.admin() as admin:
            # Execute: after the restart, the names are still taken
            again = admin.post("/v1/admin/ckks-collections", json={"name": "other"})
            back = admin.post("/v1/admin/collections", json={"name": "sealed", "dimension": DIM})
            broken = admin.post("/v1/admin/collections/claims/snapshot")
            healthy = admin.post("/v1/admin/collections/other/snapshot")
            taken = admin.post("/v1/admin/collections", json={"name": "claims", "dimension": DIM})
    finally:
        restarted.stop()
    # Assert
    assert (again.status_code, back.status_code) == (409, 409)
    assert broken.status_code == 503
    assert "claims" in broken.json()["error"]["problem"]
    assert "has no manifest" in broken.json()["error"]["problem"]
    assert healthy.status_code == 200
    assert taken.status_code == 409


def test_the_store_health_answer_names_each_broken_collection_and_its_problem(
    tmp_path: Path,
) -> None:
    # Prepare: an at-rest, a second at-rest and a CKKS collection, made by a full service
    key_file = tmp_path / "ckks_search.key"
    save_ckks_key(CkksSearchKey.generate(dimension=DIM), key_file)
    kek = secrets.token_bytes(32)
    data = tmp_path / "svc"
    service = _start(data, kek, key_file)
    try:
        with service.admin() as admin:
            for name in ("claims", "other"):
                made = admin.post("/v1/admin/collections", json={"name": name, "dimension": DIM})
                assert made.status_code == 201
            made = admin.post("/v1/admin/ckks-collections", json={"name": "sealed"})
            assert made.status_code == 201
    finally:
        service.stop()
    # "claims" loses its manifests, one bit of the CKKS collection's evaluation keys flips
    for path in (data / "store" / "collections" / "claims").glob("manifest-*.sealed"):
        path.unlink()
    evaluation = data / "store" / "ckks" / "sealed" / EVALUATION_FILE
    damaged = bytearray(evaluation.read_bytes())
    damaged[-100] ^= 1
    evaluation.write_bytes(bytes(damaged))
    # Execute: the same data dir served by a store process
    token = secrets.token_urlsafe(32)
    store = start_index_service(
        data, kek=kek, extra_args=("--role", "store"), env={"FEDEMBED_INDEX_STORE_TOKEN": token}
    )
    try:
        anonymous = httpx.get(store.url + routes.HEALTH.path(), timeout=60)
        health = httpx.get(
            store.url + routes.HEALTH.path(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
    finally:
        store.stop()
    # Assert: anyone learns only the count; the gateway's token gets both broken
    # collections, each with its problem; the healthy one is not listed
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ok", "unavailable_count": 2}
    assert health.status_code == 200
    unavailable = health.json()["unavailable"]
    assert set(unavailable) == {"claims", "sealed"}
    assert "has no manifest" in unavailable["claims"]
    assert "could not be decrypted and authenticated" in unavailable["sealed"]
