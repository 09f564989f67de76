"""Only kit-authorised SuperNodes take part in a SecAgg+ round.

The grid doubles report real ``NodeInfo`` records carrying PEM keys, as Flower's
SuperLink does: each member's key is the public half of the ``auth.key`` a real
``provision()`` wrote into its kit, and the rogue's is a P-384 key of its own (anyone
holding the CA certificate could register one). The end-to-end case drives Flower's real
``SecAggPlusWorkflow`` and ``secaggplus_mod`` through the in-process loopback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.app import Context, Message, RecordDict
from flwr.client import Client, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import NDArrays, Scalar
from flwr.proto.node_pb2 import NodeInfo
from flwr.server import LegacyContext, ServerConfig, SimpleClientManager
from flwr.server.compat.app_utils import start_update_client_manager_thread

from coordinator.authorised_grid import AuthorisedNodesGrid, authorised_grid, canonical_key
from coordinator.secaggplus_app import make_workflow
from coordinator.secaggplus_strategy import SecAggPlusFedAvg, default_params
from embedding_core.errors import FedembedError
from fedembed.simulation import run_simulated_secaggplus_federation
from federation.node_privacy import NodePrivacy
from federation.run_config import FederationConfig
from federation.secaggplus_params import SECAGGPLUS, quantization_tolerance
from kits import ProvisionResult, load_coordinator_kit, provision
from tests.coordinator.grid import ConnectedNodes, LoopbackNodes

MEMBERS = {101: "bank_a", 202: "bank_b", 303: "bank_c"}
ROGUE = 666
DIM = 8
DELTA = {101: 0.01, 202: 0.02, 303: 0.03, ROGUE: 0.4}  # per node, in every value


def _pem(key: ec.EllipticCurvePublicKey) -> bytes:
    """A key as the SuperLink stores it (PEM SubjectPublicKeyInfo)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _member_key(kits: ProvisionResult, name: str) -> ec.EllipticCurvePublicKey:
    """The public half of the member's kit ``auth.key`` (its SuperNode's key)."""
    private = serialization.load_ssh_private_key(
        (kits.node_dirs[name] / "auth.key").read_bytes(), None
    )
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    return private.public_key()


def _registered(kits: ProvisionResult) -> dict[int, bytes]:
    """Flower node id -> registered key: the three members and one rogue."""
    keys = {nid: _pem(_member_key(kits, name)) for nid, name in MEMBERS.items()}
    keys[ROGUE] = _pem(ec.generate_private_key(ec.SECP384R1()).public_key())
    return keys


class RegisteredNodes(ConnectedNodes):
    """Connected nodes with the keys they registered; records what would be sent."""

    def __init__(self, keys: dict[int, bytes]) -> None:
        super().__init__(list(keys))
        self.keys = keys
        self.sent: list[Message] = []

    def get_nodes(self) -> Iterable[NodeInfo]:
        """Each node with its registered public key, as the SuperLink reports it."""
        return [NodeInfo(node_id=nid, public_key=key) for nid, key in self.keys.items()]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Record the messages; no replies will come."""
        messages = list(messages)
        self.sent.extend(messages)
        return [str(i) for i in range(len(messages))]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Record the messages; no node replies."""
        self.sent.extend(messages)
        return []


class RegisteredLoopback(LoopbackNodes):
    """The tests' loopback grid, reporting each node's registered key."""

    def __init__(self, app: ClientApp, keys: dict[int, bytes]) -> None:
        super().__init__(app, {nid: {} for nid in keys})
        self.keys = keys

    def get_nodes(self) -> Iterable[NodeInfo]:
        """Each node with its registered public key."""
        return [NodeInfo(node_id=nid, public_key=key) for nid, key in self.keys.items()]


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> ProvisionResult:
    return provision(
        tmp_path_factory.mktemp("consortium") / "kits", node_ids=sorted(MEMBERS.values())
    )


@pytest.fixture
def authorised(kits: ProvisionResult) -> Mapping[str, str]:
    return load_coordinator_kit(kits.coordinator_dir).authorized_nodes


def test_pem_and_openssh_forms_of_a_key_compare_equal(kits: ProvisionResult) -> None:
    key = _member_key(kits, "bank_a")
    listed = (kits.node_dirs["bank_a"] / "auth.pub").read_text()  # OpenSSH, as in the kit
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    assert canonical_key(listed) == canonical_key(_pem(key)) == canonical_key(der) == der
    assert canonical_key(_pem(_member_key(kits, "bank_b"))) != der
    assert canonical_key(np.random.default_rng(0).bytes(32)) is None  # the simulation's
    assert canonical_key(b"") is None


def test_only_authorised_nodes_are_sampled(
    kits: ProvisionResult, authorised: Mapping[str, str]
) -> None:
    grid = AuthorisedNodesGrid(RegisteredNodes(_registered(kits)), authorised)
    manager = SimpleClientManager()

    # Flower's legacy workflows sample through this client manager, fed from the grid.
    thread, stop, ready = start_update_client_manager_thread(grid, manager)
    ready.wait()
    sampled = manager.sample(num_clients=manager.num_available(), min_num_clients=1)
    stop.set()
    thread.join()

    assert sorted(proxy.node_id for proxy in sampled) == sorted(MEMBERS)
    assert grid.admitted == MEMBERS
    excluded = grid.take_exclusions()
    assert list(excluded) == [ROGUE]
    assert "not in the coordinator kit" in excluded[ROGUE]
    assert grid.take_exclusions() == {}  # handed over once


def test_a_message_to_the_rogue_is_not_sent(
    kits: ProvisionResult, authorised: Mapping[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    inner = RegisteredNodes(_registered(kits))
    grid = AuthorisedNodesGrid(inner, authorised)
    messages = [Message(RecordDict(), nid, "train") for nid in (101, ROGUE, 303)]

    with caplog.at_level(logging.WARNING, logger="coordinator.authorised_grid"):
        grid.send_and_receive(messages[:2])
        pushed = list(grid.push_messages(messages[1:]))

    assert [m.metadata.dst_node_id for m in inner.sent] == [101, 303]
    assert len(pushed) == 1
    assert list(grid.take_exclusions()) == [ROGUE]
    assert f"node={ROGUE} refused" in caplog.text


def test_a_grid_without_keys_is_refused_with_a_coordinator_kit(
    kits: ProvisionResult, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(7)
    simulated = RegisteredNodes({nid: rng.bytes(32) for nid in MEMBERS})  # Flower's simulation
    unkeyed = ConnectedNodes(list(MEMBERS))  # Grid.get_nodes() default: no key at all

    for grid in (simulated, unkeyed):
        checked = authorised_grid(grid, str(kits.coordinator_dir))
        with pytest.raises(FedembedError, match="enrolment cannot be checked") as refused:
            checked.get_node_ids()
        assert "coordinator-kit" in refused.value.fix
    assert simulated.sent == []
    # Without a kit the grid is used as it is, with a warning that nothing is checked.
    with caplog.at_level(logging.WARNING, logger="coordinator.authorised_grid"):
        assert authorised_grid(simulated, "") is simulated
    assert "not checked" in caplog.text


def test_a_simulated_secaggplus_run_with_a_coordinator_kit_is_refused_before_it_starts(
    kits: ProvisionResult, tmp_path: Path
) -> None:
    config = FederationConfig(
        aggregation=SECAGGPLUS,
        coordinator_kit=str(kits.coordinator_dir),
        min_nodes=3,
        out_dir=str(tmp_path / "out"),
    )

    with pytest.raises(FedembedError, match="enrolment cannot be checked"):
        run_simulated_secaggplus_federation(
            config,
            partition_root=tmp_path,
            num_nodes=3,
            node_privacy=NodePrivacy(max_epsilon=8.0),
        )
    assert not (tmp_path / "out").exists()  # nothing ran


class FixedUpdate(NumPyClient):
    """A node whose round adds its fixed delta to every value, with unit weight."""

    def __init__(self, node_id: int, calls: list[int]) -> None:
        self.node_id = node_id
        self.calls = calls

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        self.calls.append(self.node_id)
        return [p + DELTA[self.node_id] for p in parameters], 1, {"epsilon": 0.5}


def test_secaggplus_round_aggregates_authorised_nodes_only(
    kits: ProvisionResult,
    authorised: Mapping[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def client_fn(context: Context) -> Client:
        return FixedUpdate(context.node_id, calls).to_client()

    app = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])
    config = FederationConfig(
        num_server_rounds=1,
        aggregation=SECAGGPLUS,
        embedding_dim=DIM,
        dp_enabled=False,
        update_clip_norm=0.5,
        min_nodes=3,
        out_dir=str(tmp_path),
        round_timeout=60.0,
    )
    params = default_params(config)
    strategy = SecAggPlusFedAvg(
        config,
        names=["w"],
        initial=[np.zeros(DIM, dtype=np.float32)],
        ledger_path=tmp_path / "ledger.json",
        params=params,
    )
    grid = AuthorisedNodesGrid(RegisteredLoopback(app, _registered(kits)), authorised)
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)

    with caplog.at_level("INFO", logger="coordinator.secaggplus_strategy"):
        make_workflow(config, params)(grid, legacy)

    assert "round 1/1: 3 replies of 3 sampled, 1 refused, aggregated" in caplog.messages
    assert ROGUE not in calls
    assert sorted(set(calls)) == sorted(MEMBERS)
    want = np.mean([DELTA[nid] for nid in MEMBERS])  # the rogue's 0.4 would move it by 0.1
    tolerance = quantization_tolerance(
        num_nodes=3,
        total_weight=3.0,
        max_weight=params.max_weight,
        clipping_range=strategy.clipping_range,
        quantization_range=params.quantization_range,
    )
    assert np.abs(strategy.global_arrays[0] - want).max() <= tolerance + 1e-6
    ledger = json.loads((tmp_path / "ledger.json").read_text())
    (entry,) = ledger["rounds"]
    assert entry["released"] is True
    assert entry["sampled"] == 3
    (refusal,) = ledger["refusals"]
    assert refusal["node"] == str(ROGUE)
    assert refusal["reason"].startswith("not enrolled:")
