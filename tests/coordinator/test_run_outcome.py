"""What a federation run leaves in its folder: published or failed, progress, names, tag.

Whole runs go through the real ServerApp code (``run_federation``) over an in-process
loopback grid whose nodes are small ClientApps: every node refuses, or every node
answers with the global model it was sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.proto.node_pb2 import NodeInfo
from flwr.serverapp.strategy import FedAvg

from coordinator.central_evaluation import CentralEvaluator
from coordinator.federation_ledger import FederationLedger, NodeNames
from coordinator.publication import FederationFailedError
from coordinator.run_folder import (
    ADAPTER_DIR,
    CENTRAL_METRICS_FILE,
    HISTORY_FILE,
    LEDGER_FILE,
)
from coordinator.server_app import run_federation
from embedding_core.adapter import Adapter
from federation.run_config import FederationConfig
from tests.coordinator.grid import ConnectedNodes, LoopbackNodes
from tests.coordinator.replies import train_reply

NODE_IDS = (101, 102)


def _refusing_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        raise RuntimeError(f"node-{context.node_id}: privacy budget exhausted")

    return app


def _echo_app() -> ClientApp:
    """A node that answers with the global model it was sent (a zero update)."""
    app = ClientApp()

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        arrays = msg.content.array_records["arrays"]
        metrics = MetricRecord({"unit-weight": 1.0, "epsilon": 0.5})
        return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)

    return app


def _config(out: Path, **overrides: object) -> FederationConfig:
    values: dict[str, object] = {
        "num_server_rounds": 2,
        "aggregation": "plaintext",
        "allow_insecure_plaintext": True,
        "min_nodes": len(NODE_IDS),
        "eval_dataset": "none",
        "out_dir": str(out),
        "round_timeout": 30.0,
        "embedding_dim": 8,
        **overrides,
    }
    return FederationConfig(**values)  # type: ignore[arg-type]


def _grid(app: ClientApp) -> LoopbackNodes:
    return LoopbackNodes(app, {node: {} for node in NODE_IDS})


@pytest.mark.usefixtures("server_app_process")
def test_a_run_in_which_every_node_refuses_fails_and_publishes_nothing(tmp_path: Path) -> None:
    # Prepare: the folder holds an adapter a previous run published.
    out = tmp_path / "run"
    previous = Adapter(8, kind="residual_linear")
    previous.save(out / ADAPTER_DIR, base_model_id="m", base_model_fingerprint="f")
    before = {p.name: p.read_bytes() for p in (out / ADAPTER_DIR).iterdir()}

    # Execute
    with pytest.raises(FederationFailedError, match="no round of 2 was aggregated"):
        run_federation(_grid(_refusing_app()), _config(out))

    # Assert: the old adapter is untouched; the history says failed, why, and who refused.
    assert {p.name: p.read_bytes() for p in (out / ADAPTER_DIR).iterdir()} == before
    history = json.loads((out / HISTORY_FILE).read_text())
    assert history["status"] == "failed"
    assert "refusal" in history["reason"]
    assert history["rounds_released"] == 0
    assert {r["node"] for r in history["refusals"]} == {str(n) for n in NODE_IDS}
    assert all("budget" in r["reason"] for r in history["refusals"])
    ledger = json.loads((out / LEDGER_FILE).read_text())
    assert [r["released"] for r in ledger["rounds"]] == [False, False]


@pytest.mark.usefixtures("server_app_process")
def test_a_run_that_aggregates_publishes_with_its_tag_and_without_evaluation(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"

    summary = run_federation(_grid(_echo_app()), _config(out))

    assert summary["status"] == "succeeded"
    assert summary["rounds_released"] == 2
    # No run-tag in the config: the run is tagged with the Flower run id (1 on this grid).
    assert summary["run_tag"] == "flwr-1"
    # eval-dataset = "none": rounds ran, no central metrics anywhere.
    assert summary["eval_dataset"] == "none"
    assert "ndcg@10_per_round" not in summary
    assert not (out / CENTRAL_METRICS_FILE).exists()
    adapter = Adapter.load(out / ADAPTER_DIR)
    assert adapter.metadata["run_tag"] == "flwr-1"
    assert adapter.metadata["status"] == "succeeded"
    assert json.loads((out / HISTORY_FILE).read_text())["per_node_epsilon"] == {
        "101": 0.5,
        "102": 0.5,
    }


@pytest.mark.usefixtures("server_app_process")
def test_an_explicit_run_tag_is_kept(tmp_path: Path) -> None:
    summary = run_federation(
        _grid(_echo_app()), _config(tmp_path / "run", run_tag="trial-7", num_server_rounds=1)
    )

    assert summary["run_tag"] == "trial-7"


def _write_beir(root: Path) -> Path:
    """A five-document BEIR dataset with two judged test queries."""
    folder = root / "tiny"
    (folder / "qrels").mkdir(parents=True)
    docs = [
        ("d1", "Aspirin lowers the risk of heart attacks."),
        ("d2", "Vitamin D deficiency is common in winter."),
        ("d3", "Exercise improves insulin sensitivity."),
        ("d4", "Smoking causes lung cancer."),
        ("d5", "Sleep loss impairs memory consolidation."),
    ]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in docs)
    )
    queries = [("q1", "does aspirin prevent heart attacks"), ("q2", "smoking and cancer")]
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries)
    )
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td4\t1\n")
    return root


def test_central_metrics_land_in_the_run_folder_each_round_and_vectors_are_cached(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    data = _write_beir(tmp_path / "data")
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    evaluator = CentralEvaluator(
        data_dir=data, dataset="tiny", kind="residual_linear", rank=0, cache_dir=cache, out_dir=out
    )
    arrays = ArrayRecord(Adapter(evaluator.encoder.dimension).state_dict())

    # Execute: the initial model, then round 1.
    evaluator(0, arrays)
    after_initial = json.loads((out / CENTRAL_METRICS_FILE).read_text())
    evaluator(1, arrays)
    after_round = json.loads((out / CENTRAL_METRICS_FILE).read_text())
    caplog.clear()
    with caplog.at_level("INFO"):
        CentralEvaluator(
            data_dir=data, dataset="tiny", kind="residual_linear", rank=0, cache_dir=cache
        )

    # Assert: each evaluation is on disk as soon as it is computed.
    assert after_initial["dataset"] == "tiny"
    assert set(after_initial["rounds"]) == {"0"}
    assert set(after_round["rounds"]) == {"0", "1"}
    assert 0 < after_round["rounds"]["1"]["ndcg@10"] <= 1
    # A second evaluator on the same cache encodes nothing again, and says how far it is.
    messages = [r.getMessage() for r in caplog.records]
    lookups = [m for m in messages if m.startswith("cache: space=")]
    assert lookups, messages
    assert all(m.endswith(" misses=0") for m in lookups), lookups
    assert any(m.startswith("evaluate: encode tiny documents: done, 5 texts") for m in messages)


def _openssh_key() -> tuple[str, bytes]:
    """An EC public key as the kit lists it (OpenSSH) and as the SuperLink reports it (PEM)."""
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    openssh = public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return openssh, pem


class _RegisteredNodes(ConnectedNodes):
    """Connected nodes that report their registered public keys, as the SuperLink does."""

    def __init__(self, keys: dict[int, bytes]) -> None:
        super().__init__(list(keys))
        self.keys = keys

    def get_nodes(self) -> list[NodeInfo]:
        return [NodeInfo(node_id=n, public_key=k) for n, k in self.keys.items()]


def _reply(node: int, *, epsilon: float) -> Message:
    arrays = ArrayRecord({"w": Array(np.zeros(4, dtype=np.float32))})
    metrics = MetricRecord({"unit-weight": 1.0, "epsilon": epsilon})
    return train_reply(RecordDict({"arrays": arrays, "metrics": metrics}), node)


@pytest.mark.usefixtures("server_app_process")
def test_the_ledger_names_nodes_by_their_kit_name(tmp_path: Path) -> None:
    # Prepare: two members of the kit and one stranger, as the SuperLink reports them.
    alice, alice_pem = _openssh_key()
    bob, bob_pem = _openssh_key()
    _, stranger_pem = _openssh_key()
    grid = _RegisteredNodes({11: alice_pem, 12: bob_pem, 13: stranger_pem})
    ledger = FederationLedger(
        FedAvg(min_train_nodes=1, min_available_nodes=1, weighted_by_key="unit-weight"),
        path=tmp_path / LEDGER_FILE,
        names=NodeNames({"alice": alice, "bob": bob}),
    )
    global_arrays = ArrayRecord({"w": Array(np.zeros(4, dtype=np.float32))})
    ledger.configure_train(1, global_arrays, ConfigRecord(), grid)
    refused = Message(
        error=Error(code=4001, reason="bob: budget exhausted"),
        metadata=train_reply(RecordDict(), 12).metadata,
    )

    # Execute
    ledger.aggregate_train(1, [_reply(11, epsilon=1.5), refused, _reply(13, epsilon=0.5)])

    # Assert: kit names in the ledger, Flower's number beside them; a stranger by number.
    saved = json.loads((tmp_path / LEDGER_FILE).read_text())
    nodes = saved["rounds"][0]["nodes"]
    assert nodes["alice"] == {"answered": True, "epsilon": 1.5, "flower_node_id": 11}
    assert nodes["bob"]["flower_node_id"] == 12
    assert ledger.refusals() == [{"round": 1, "node": "bob", "reason": "bob: budget exhausted"}]
    assert ledger.per_node_epsilon() == {"alice": 1.5, "13": 0.5}
