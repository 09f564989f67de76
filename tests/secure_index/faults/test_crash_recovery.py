"""SIGKILL the service during 10,000 concurrent inserts: every acknowledged insert
survives, none is duplicated, each has its audit record, and the index and the audit
log open, answer and verify after a restart."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from pathlib import Path

import httpx
import numpy as np

from secure_index.index.index_store import IndexStore
from secure_index.sealing import EnvKeks
from secure_index.service.audit_log import ids_digest, verify_audit_log
from secure_index.service.local_service import start_index_service
from secure_index.service.settings import STORE_DIR, audit_path

DIM = 16
COLLECTION = "crash"
THREADS = 16
TOTAL = 10_000
KILL_AFTER = 3_000
# How long a request or the wait for KILL_AFTER acknowledgements may take: generous, so a
# loaded machine only slows the test down; a hung service still fails it.
PATIENCE = 600.0


def _vector(doc: int) -> list[float]:
    v = np.random.default_rng(doc).standard_normal(DIM)
    return (v / np.linalg.norm(v)).astype(np.float32).tolist()


def test_sigkill_during_concurrent_inserts_loses_no_acknowledged_insert(
    tmp_path: Path, monkeypatch: object
) -> None:
    # Prepare: a service with a collection and a node key allowed to go fast
    kek = secrets.token_bytes(32)
    service = start_index_service(tmp_path / "svc", kek=kek, extra_args=("--no-text-queries",))
    with service.admin() as admin:
        admin.post("/v1/admin/collections", json={"name": COLLECTION, "dimension": DIM})
        token = admin.post(
            "/v1/admin/credentials",
            json={"role": "node", "name": "node-a", "scopes": [COLLECTION],
                  "rate_per_minute": 1_000_000, "burst": 100_000},
        ).json()["token"]  # fmt: skip
    acked: list[int] = []
    lock = threading.Lock()
    enough = threading.Event()

    def inserter(t: int) -> None:
        with httpx.Client(
            base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=PATIENCE
        ) as c:
            for doc in range(t, TOTAL, THREADS):
                item = {"id": f"doc-{doc}", "vector": _vector(doc)}
                try:
                    r = c.put(f"/v1/collections/{COLLECTION}/documents", json={"items": [item]})
                except httpx.HTTPError:
                    return  # the service was killed
                if r.status_code == 200:
                    with lock:
                        acked.append(doc)
                        if len(acked) >= KILL_AFTER:
                            enough.set()

    threads = [threading.Thread(target=inserter, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    # Execute: SIGKILL in the middle of the inserts
    try:
        assert enough.wait(timeout=PATIENCE), f"only {len(acked)} inserts acknowledged"
    finally:
        service.kill()
        for t in threads:
            t.join()  # the killed service refuses every request: each inserter returns
    acknowledged = set(acked)
    restarted = start_index_service(tmp_path / "svc", kek=kek, extra_args=("--no-text-queries",))
    try:
        with restarted.admin() as admin:
            stats = admin.get("/v1/admin/collections").json()[0]
    finally:
        if restarted.stop(timeout_s=30) != 0:
            restarted.kill()
    # Assert: offline, with the same key, every acknowledged id is there exactly once
    monkeypatch.setenv("FEDEMBED_INDEX_KEK", base64.b64encode(kek).decode())  # type: ignore[attr-defined]
    with IndexStore(
        tmp_path / "svc" / STORE_DIR, keks=EnvKeks.from_env(), tenant="consortium", background=False
    ) as store:
        rows = store.lookup(COLLECTION, [f"doc-{d}" for d in sorted(acknowledged)])
        stored = [
            row.doc_id for row in store.lookup(COLLECTION, [f"doc-{d}" for d in range(TOTAL)])
        ]
        documents = store.stats(COLLECTION).documents
        probe = sorted(acknowledged)
        hits = store.knn_query(
            COLLECTION, np.array([_vector(d) for d in probe], dtype=np.float32), k=2
        )
    log = audit_path(tmp_path / "svc")
    audited = {
        record["detail"]["ids_sha256"]
        for record in map(json.loads, log.read_text().splitlines())
        if (record["action"], record["decision"]) == ("upload", "allow")
    }
    verdict = verify_audit_log(log, keks=EnvKeks.from_env())
    assert len(acknowledged) < TOTAL  # the kill really interrupted the run
    assert len(rows) == len(acknowledged)
    assert len({r.label for r in rows}) == len(rows)
    assert len(acknowledged) <= documents <= TOTAL
    assert stats["documents"] == documents
    assert all(h[0].doc_id == f"doc-{d}" for h, d in zip(hits, probe, strict=True))
    assert all(h[0].doc_id != h[1].doc_id for h in hits)
    unaudited = [d for d in sorted(acknowledged) if ids_digest([f"doc-{d}"]) not in audited]
    assert unaudited == []  # every acknowledged upload has its audit record
    assert [d for d in stored if ids_digest([d]) not in audited] == []  # and every stored one
    assert verdict.ok, verdict.problem
