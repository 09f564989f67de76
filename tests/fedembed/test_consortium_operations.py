"""The consortium's control plane end to end on Flower's deployment engine.

One real TLS SuperLink, real SuperNodes, the admin API (over its own token store and
trail) and a real query gateway process. The admin API registers the provisioned
members, enrols a fourth member into the running consortium, runs a federation with it,
revokes it, runs again (it takes no part), registers the second run's model, promotes it
to the gateway (which reloads without a restart) and a partner created through the admin
API queries it.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from client_node.node_data import STATE_DIR
from coordinator.admin.app import create_admin_app
from coordinator.admin.server import build_parts
from coordinator.admin.settings import AdminSettings
from coordinator.admin.token_store import AdminTokenStore
from coordinator.admin.tokens import AdminRole
from embedding_core.encoder import Encoder
from fedembed.loopback_consortium import LoopbackConsortium
from federation.node_privacy import NodePrivacy
from index_client.vector_space import VectorSpace
from kits.ckks_ceremony import ckks_seal_for, install_ckks_secret, run_ckks_ceremony
from kits.layout import AUTHORIZED_NODES
from kits.member_list import accept_member_list
from kits.node_keys import generate_auth_key, install_auth_key
from kits.provisioning import provision
from secure_index.service.local_service import LocalIndexService, start_index_service
from tests.fedembed.conftest import NODES

NEW_MEMBER = "node-3"
COLLECTION = "claims"
SMOKE_EPSILON = 2.0  # a smoke-test budget: the default target epsilon would spend it all
FINAL = {"succeeded", "failed", "stopped"}


def _run_config(min_nodes: int) -> dict[str, object]:
    return {
        "num-server-rounds": 1,
        "aggregation": "ckks",
        "adapter-kind": "shift",  # 384 numbers under CKKS: the control plane is under test
        "eval-dataset": "none",
        "min-nodes": min_nodes,
        "batch-size": 32,
        "learning-rate": 0.01,
        "target-epsilon": 1.0,
        "update-clip-norm": 5.0,
    }


class Operator:
    """The consortium operator's side: the admin API with an admin token."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        answer = self.client.request(method, path, headers=self.headers, **kwargs)
        assert answer.status_code == status, f"{method} {path}: {answer.text}"
        return answer.json()

    def run_to_end(self, name: str, min_nodes: int) -> dict[str, Any]:
        started = self.call(
            "POST", "/v1/runs", 202, json={"name": name, "run_config": _run_config(min_nodes)}
        )
        assert started["name"] == name
        while True:  # pytest-timeout bounds a run that never ends
            view: dict[str, Any] = self.call("GET", f"/v1/runs/{name}", 200)
            if view["state"] in FINAL:
                return view
            time.sleep(2.0)


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIndexService]:
    """A real query gateway (text queries, the bundled encoder) with a small collection."""
    token = secrets.token_urlsafe(32)
    service = start_index_service(tmp_path / "gateway", admin_token=token)
    monkeypatch.setenv("FEDEMBED_INDEX_ADMIN_TOKEN", token)  # the admin API's gateway token
    try:
        texts = [f"clinical note {i}: patient with condition {i % 7}" for i in range(40)]
        encoder = Encoder.load()
        vectors = encoder.encode(texts)
        with service.admin_client() as admin:
            admin.create_collection(COLLECTION, int(vectors.shape[1]))
            node = admin.issue_credential("node", NODES[0], [COLLECTION])
        with service.gateway_client(node.token) as member:
            member.upsert_documents(
                COLLECTION,
                [f"doc-{i}" for i in range(40)],
                vectors,
                space=VectorSpace.of(encoder),
            )
        yield service
    finally:
        service.stop()


def _member_folder(source: Path, target: Path) -> Path:
    """A member's data folder: another member's files, its own (empty) state."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(STATE_DIR))
    return target


@pytest.mark.timeout(2400)
def test_enrol_run_revoke_run_promote_query(
    tmp_path: Path,
    consortium_data: tuple[Path, dict[str, Path]],
    embedding_cache_dir: Path,
    gateway: LocalIndexService,
) -> None:
    # Prepare: a provisioned consortium after its key ceremony, a SuperLink, the admin API.
    _, node_dirs = consortium_data
    home = tmp_path / "home"
    kits = home / "kits"
    provision(kits, node_ids=list(NODES))
    run_ckks_ceremony(kits, key_holder=NODES[0])
    env = {
        "FEDEMBED_CACHE_DIR": str(embedding_cache_dir),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    loopback = LoopbackConsortium(kits=kits, work=tmp_path / "work", env=env)
    loopback.start([])  # the SuperLink alone: the admin API registers the members
    assert loopback.superlink is not None
    settings = AdminSettings(
        home=home,
        port=0,
        superlink_control=loopback.superlink.extra["address"],
        gateway_url=gateway.url,
    )
    parts = build_parts(settings)
    assert isinstance(parts.tokens, AdminTokenStore)
    _, admin_token = parts.tokens.create("consortium-admin", AdminRole.ADMIN)
    _, auditor_token = parts.tokens.create("auditor", AdminRole.AUDITOR)
    member_data = {**node_dirs, NEW_MEMBER: _member_folder(node_dirs[NODES[2]], tmp_path / "m3")}
    for folder in member_data.values():
        shutil.rmtree(folder / STATE_DIR, ignore_errors=True)  # fresh privacy ledgers
    try:
        with TestClient(create_admin_app(settings, parts=parts)) as client:
            admin = Operator(client, admin_token)
            for name in NODES:  # register before the nodes start
                admin.call("POST", f"/v1/members/{name}/register", 200)
            for name in NODES:
                loopback.start_node(
                    name,
                    data_dir=member_data[name],
                    node_privacy=NodePrivacy(max_epsilon=SMOKE_EPSILON),
                )

            # Execute 1: enrol a fourth member into the running consortium.
            keys = generate_auth_key(tmp_path / "m3-keys")
            enrolled = admin.call(
                "POST",
                "/v1/members",
                201,
                json={"name": NEW_MEMBER, "auth_pub": keys.read_text(encoding="ascii")},
            )
            new_kit = Path(enrolled["kit"])
            install_auth_key(new_kit, keys.parent / "auth.key")
            for name in NODES:  # each member takes the new list, pinned by its digest
                accept_member_list(
                    kits / "nodes" / name,
                    kits / "coordinator" / AUTHORIZED_NODES,
                    sha256=enrolled["authorized_nodes_sha256"],
                )
            bundle = ckks_seal_for(
                kits / "nodes" / NODES[0],
                tmp_path / "m3-bundle",
                node_id=NEW_MEMBER,
                auth_pub=keys.read_text(encoding="ascii"),
            )
            install_ckks_secret(new_kit, bundle)
            loopback.start_node(
                NEW_MEMBER,
                data_dir=member_data[NEW_MEMBER],
                node_privacy=NodePrivacy(max_epsilon=SMOKE_EPSILON),
            )
            with_four = admin.run_to_end("with-node-3", min_nodes=4)

            # Assert 1: the new member took part, named by its kit name.
            assert with_four["state"] == "succeeded", with_four
            answered = with_four["progress"]["rounds"][0]["answered"]
            assert sorted(answered) == sorted([*NODES, NEW_MEMBER])
            budgets = admin.call("GET", f"/v1/budgets/{NEW_MEMBER}", 200)
            assert 0 < budgets["epsilon"] <= SMOKE_EPSILON

            # Execute 2: revoke it and run again without it.
            revoked = admin.call("POST", f"/v1/members/{NEW_MEMBER}/revoke", 200)
            assert revoked["state"] == "revoked"
            after = admin.run_to_end("after-revoke", min_nodes=3)

            # Assert 2: the run succeeded with the three members; the revoked one is out.
            assert after["state"] == "succeeded", after
            answered = after["progress"]["rounds"][0]["answered"]
            assert sorted(answered) == sorted(NODES)
            runs_of_new = admin.call("GET", f"/v1/budgets/{NEW_MEMBER}", 200)
            assert [r["run"] for r in runs_of_new["runs"]] == ["with-node-3"]
            auditor = client.post(
                "/v1/runs",
                headers={"Authorization": f"Bearer {auditor_token}"},
                json={"run_config": _run_config(3)},
            )
            assert auditor.status_code == 403

            # Execute 3: register the second run's model, promote it, query it as a partner.
            version = admin.call("POST", "/v1/models/register", 201, json={"run": "after-revoke"})
            number = version["version"]
            promoted = admin.call("POST", f"/v1/models/{number}/promote", 200)
            partner = admin.call(
                "POST", "/v1/partners", 201, json={"name": "insurer-x", "scopes": [COLLECTION]}
            )
            with gateway.admin_client() as gateway_admin:
                served = gateway_admin.current_adapter()
            with gateway.gateway_client(partner["token"]) as partner_client:
                hits = partner_client.query(COLLECTION, "patient with condition 3", k=5)

            # Assert 3: the gateway serves the promoted version; the partner gets answers.
            assert promoted["live"] == number
            weights = version["files"]["adapter.safetensors"]
            assert served.source == "promoted"
            assert served.weights_sha256 == weights == promoted["gateway"]["weights_sha256"]
            assert [h.rank for h in hits.hits] == [1, 2, 3, 4, 5]
            assert all(h.score is None for h in hits.hits)  # ranks only, by default
            assert np.unique([h.doc_id for h in hits.hits]).size == 5
    finally:
        loopback.stop()
