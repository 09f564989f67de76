"""The model registry: a succeeded run's adapter becomes an immutable, hashed version with
its epsilon per observer; promotion reaches a real query gateway (which serves it without
a restart), rollback returns to the version live before, and a tampered version or one the
gateway refuses never becomes live."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from flwr.app import Array, ArrayRecord, Message, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from coordinator.admin.errors import (
    AdminConflictError,
    AdminInvalidError,
    AdminNotFoundError,
    AdminUnavailableError,
)
from coordinator.admin.home import ConsortiumHome
from coordinator.admin.model_registry import ModelRegistry
from coordinator.admin.settings import AdminSettings
from coordinator.admin.tokens import AdminRole
from coordinator.federation_ledger import FederationLedger, NodeNames
from coordinator.publication import ADAPTER_DIR, LEDGER_FILE
from embedding_core.adapter import MANIFEST_FILE, WEIGHTS_FILE, Adapter
from secure_index.service.local_service import LocalIndexService, start_index_service
from tests.coordinator.grid import start_round

DIM = 384  # the gateway's bundled all-MiniLM-L6-v2
GLOBAL = ArrayRecord({"w": Array(np.zeros(4, dtype=np.float32))})


@pytest.fixture(autouse=True)
def as_a_server_app(server_app_process: None) -> None:
    """The runs' ledgers are written as the ServerApp writes them (a task identity)."""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndexService]:
    """One real text-query gateway (its encoder loads once) for the module."""
    service = start_index_service(
        tmp_path_factory.mktemp("gateway") / "svc", kek=secrets.token_bytes(32)
    )
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def fingerprint(gateway: LocalIndexService) -> str:
    with gateway.admin_client() as admin:
        found = admin.current_adapter().encoder_fingerprint
    assert found is not None
    return found


@pytest.fixture
def admin_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway: LocalIndexService
) -> AdminSettings:
    """A fresh home whose admin API knows the gateway (URL and admin token)."""
    for variable in ("FEDEMBED_ADMIN_TRAIL_KEY", "FEDEMBED_ADMIN_METRICS_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FEDEMBED_INDEX_ADMIN_TOKEN", gateway.admin_token)
    home = tmp_path / "home"
    home.mkdir()
    return AdminSettings(home=home, port=0, gateway_url=gateway.url)


def _reply(node: int, epsilon: float) -> Message:
    metadata = Metadata(
        run_id=1, message_id=f"m{node}", src_node_id=node, dst_node_id=0,
        reply_to_message_id="x", group_id="1", created_at=0.0, ttl=60.0, message_type="train",
    )  # fmt: skip
    metrics = MetricRecord({"unit-weight": 1.0, "epsilon": epsilon})
    arrays = ArrayRecord({"w": Array(np.full(4, 0.1, dtype=np.float32))})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), metadata=metadata)


def _publish(
    home: ConsortiumHome, run: str, fingerprint: str, *, seed: int, status: str = "succeeded"
) -> Path:
    """A run folder as a run publishes it: the ledger, global_adapter/ and history.json."""
    folder = home.runs / run
    names = NodeNames()
    names.update({1: "clinic-a", 2: "clinic-b"})
    inner = FedAvg(min_train_nodes=1, min_available_nodes=1, weighted_by_key="unit-weight")
    ledger = FederationLedger(
        inner,
        path=folder / LEDGER_FILE,
        node_noise_multiplier=1.0,
        total_nodes=2,
        names=names,
    )
    start_round(ledger, 1, GLOBAL, [1, 2])
    ledger.aggregate_train(1, [_reply(1, 1.5), _reply(2, 2.5)])
    adapter = Adapter(DIM, kind="shift", side="query")
    assert adapter.shift is not None
    with torch.no_grad():
        adapter.shift.copy_(torch.from_numpy(np.random.default_rng(seed).standard_normal(DIM)))
    adapter.save(
        folder / ADAPTER_DIR,
        base_model_id="all-MiniLM-L6-v2",
        base_model_fingerprint=fingerprint,
        metadata={"ledger": ledger.to_dict()},
    )
    (folder / "history.json").write_text(json.dumps({"rounds": 1, "status": status}))
    return folder / ADAPTER_DIR


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_succeeded_run_becomes_an_immutable_hashed_version(
    admin_settings: AdminSettings, fingerprint: str
) -> None:
    # Prepare
    home = admin_settings.consortium
    source = _publish(home, "run-a", fingerprint, seed=1)
    _publish(home, "run-failed", fingerprint, seed=2, status="failed")
    registry = ModelRegistry(admin_settings)
    # Execute
    first = registry.register("run-a")
    # Assert: the manifest
    assert (first["version"], first["run"], first["live"], first["intact"]) == (
        1, "run-a", False, True,
    )  # fmt: skip
    assert first["base_model"] == {"id": "all-MiniLM-L6-v2", "fingerprint": fingerprint}
    assert first["files"] == {n: _sha(source / n) for n in (MANIFEST_FILE, WEIGHTS_FILE)}
    assert first["epsilon"]["per_node"] == {"clinic-a": 1.5, "clinic-b": 2.5}
    per_observer = first["epsilon"]["per_observer"]
    assert per_observer["fellow-member"]["sample_level"] == 2.5
    assert per_observer["partner"]["node_level"] is not None
    assert per_observer["coordinator"]["node_level"] is None  # its noise is not for them
    folder = home.models / "versions" / "1"
    assert all(not os.stat(folder / n).st_mode & stat.S_IWUSR for n in os.listdir(folder))
    assert registry.list() == [registry.get(1)]
    # Assert: no second version of a run, none of a failed or unknown run, no odd name
    with pytest.raises(AdminConflictError):
        registry.register("run-a")
    with pytest.raises(AdminConflictError, match="failed"):
        registry.register("run-failed")
    with pytest.raises(AdminNotFoundError):
        registry.register("run-missing")
    with pytest.raises(AdminInvalidError):
        registry.register("../run-a")
    with pytest.raises(AdminNotFoundError):
        registry.get(2)


def _post(client: TestClient, path: str, role: dict[str, str], **body: object) -> dict[str, object]:
    answer = client.post(path, headers=role, json=body or None)
    assert answer.status_code in (200, 201), answer.text
    document: dict[str, object] = answer.json()
    return document


def _served(gateway: LocalIndexService) -> str | None:
    with gateway.admin_client() as admin:
        return admin.current_adapter().version


def test_promote_and_roll_back_on_a_real_gateway(
    admin_settings: AdminSettings,
    admin_client: TestClient,
    admin_auth: dict[AdminRole, dict[str, str]],
    gateway: LocalIndexService,
    fingerprint: str,
) -> None:
    # Prepare: two versions
    home, operator = admin_settings.consortium, admin_auth[AdminRole.OPERATOR]
    for run, seed in (("run-a", 1), ("run-b", 2)):
        _publish(home, run, fingerprint, seed=seed)
        _post(admin_client, "/v1/models/register", operator, run=run)
    # Execute and assert: each promotion is served at once, a rollback returns to the last
    auditor = admin_client.post("/v1/models/1/promote", headers=admin_auth[AdminRole.AUDITOR])
    assert auditor.status_code == 403
    assert _post(admin_client, "/v1/models/1/promote", operator)["live"] == 1
    assert _served(gateway) == "1"
    promoted = _post(admin_client, "/v1/models/2/promote", operator)
    assert _served(gateway) == "2"
    gateway_sha = promoted["gateway"]["weights_sha256"]  # type: ignore[index]
    assert gateway_sha == _sha(home.models / "versions" / "2" / WEIGHTS_FILE)
    assert _post(admin_client, "/v1/models/rollback", operator)["live"] == 1
    assert _served(gateway) == "1"
    listing = admin_client.get("/v1/models", headers=admin_auth[AdminRole.AUDITOR]).json()
    assert listing["live"] == 1
    assert [(v["version"], v["live"]) for v in listing["versions"]] == [(1, True), (2, False)]
    no_earlier = admin_client.post("/v1/models/rollback", headers=operator)
    assert no_earlier.status_code == 409
    trail = (home.state / "trail.jsonl").read_text().splitlines()
    actions = [json.loads(line)["action"] for line in trail]
    assert [a for a in actions if a.startswith("model.")] == [
        "model.register", "model.register", "model.promote", "model.promote", "model.rollback",
    ]  # fmt: skip


def test_a_tampered_or_refused_version_never_becomes_live(
    admin_settings: AdminSettings,
    admin_client: TestClient,
    admin_auth: dict[AdminRole, dict[str, str]],
    gateway: LocalIndexService,
    fingerprint: str,
) -> None:
    # Prepare: a live version, a version whose weights are then changed on disk, and a
    # version trained on another base model
    home, operator = admin_settings.consortium, admin_auth[AdminRole.OPERATOR]
    for run, seed, base in (("run-a", 1, fingerprint), ("run-b", 2, fingerprint),
                            ("run-c", 3, "0" * 64)):  # fmt: skip
        _publish(home, run, fingerprint=base, seed=seed)
        _post(admin_client, "/v1/models/register", operator, run=run)
    _post(admin_client, "/v1/models/1/promote", operator)
    weights = home.models / "versions" / "2" / WEIGHTS_FILE
    weights.chmod(0o644)
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    # Execute
    tampered = admin_client.post("/v1/models/2/promote", headers=operator)
    other_base = admin_client.post("/v1/models/3/promote", headers=operator)
    # Assert: both refused, with why; the gateway and the registry still on version 1
    assert tampered.status_code == 409
    assert "adapter.safetensors" in tampered.json()["error"]["problem"]
    assert other_base.status_code == 409
    assert "another base model" in other_base.json()["error"]["problem"]
    assert _served(gateway) == "1"
    assert admin_client.get("/v1/models", headers=operator).json()["live"] == 1
    two = admin_client.get("/v1/models/2", headers=operator).json()
    assert two["intact"] is False


def test_promotion_without_a_gateway_is_unavailable(
    admin_settings: AdminSettings, fingerprint: str
) -> None:
    # Prepare: the same home, but an admin API that knows no gateway
    _publish(admin_settings.consortium, "run-a", fingerprint, seed=1)
    alone = admin_settings.model_copy(update={"gateway_url": None})
    registry = ModelRegistry(alone)
    registry.register("run-a")
    # Execute / Assert
    with pytest.raises(AdminUnavailableError):
        registry.promote(1)
    assert registry.live() is None


def test_the_gateway_serves_the_registered_files(
    admin_settings: AdminSettings, gateway: LocalIndexService, fingerprint: str
) -> None:
    # Prepare
    _publish(admin_settings.consortium, "run-a", fingerprint, seed=4)
    registry = ModelRegistry(admin_settings)
    manifest = registry.register("run-a")
    # Execute
    registry.promote(1)
    # Assert: the gateway serves exactly the registered files (by their hashes)
    with gateway.admin_client() as admin:
        served = admin.current_adapter()
    files = manifest["files"]
    assert (served.manifest_sha256, served.weights_sha256) == (
        files[MANIFEST_FILE], files[WEIGHTS_FILE],
    )  # fmt: skip
