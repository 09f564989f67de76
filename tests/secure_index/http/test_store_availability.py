"""Through a real service: one name space for every collection kind (409 either way, also
after a restart), and one broken collection answers 503 naming its problem while the
others keep serving."""

from __future__ import annotations

import secrets
from pathlib import Path

from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
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
