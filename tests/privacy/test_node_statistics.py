"""Threat: an honest-but-curious coordinator that reads everything a node sends.

Nothing computed from a node's private records (losses, norms, counts, timings) may leave
the node outside the DP-protected secure sum unless its operator declared it public. The
real ClientApp answers train messages in plaintext and CKKS mode: its metric record holds
privacy bookkeeping and a unit weight only, and the record count only where the operator
declared it public and the round weighs nodes by declared counts. A declared-counts round
is refused by a node without that declaration, before anything trains or is charged.
Whole federations run in this process (the real ServerApp code, a loopback grid, the real
ClientApp): the published manifest and the federation ledger keep no per-node counts, and
CKKS divides the decrypted sum by the same public denominator as plaintext FedAvg.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict

from client_node.client_app import app as client_app
from client_node.local_round import LEDGER_FILE
from coordinator.publication import ADAPTER_DIR
from coordinator.publication import LEDGER_FILE as FEDERATION_LEDGER_FILE
from coordinator.secaggplus_app import run_secaggplus_federation
from coordinator.server_app import run_federation
from embedding_core.adapter import Adapter, AdapterSide
from federation.node_privacy import NodePrivacy
from federation.records import CkksField
from federation.round_settings import RoundSettings
from federation.run_config import FederationConfig
from federation.secaggplus_params import (
    DEFAULT_MAX_WEIGHT,
    DEFAULT_QUANTIZATION_RANGE,
    SECAGGPLUS,
    UNCLIPPED_CLIPPING_RANGE,
    quantization_tolerance,
)
from federation.wire import (
    ERROR_CODE_NODE_REFUSED,
    SERVER_ROUND_KEY,
    ContentKey,
    MetricKey,
    NodeConfigKey,
)
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision
from tests.coordinator.grid import LoopbackNodes
from tests.privacy.messages import train_message

DIM = 384
NODES = {"node-0": 2, "node-1": 4}  # name: private record count
BOOKKEEPING = {
    MetricKey.EPSILON.value,
    MetricKey.EPSILON_ROUND.value,
    MetricKey.NOISE_MULTIPLIER.value,
    MetricKey.NOISE_SHARE.value,
    MetricKey.UNIT_WEIGHT.value,
    # The charged mechanism: public settings and the coarse unit count the epsilon uses.
    MetricKey.CHARGED_NOISE.value,
    MetricKey.SAMPLE_RATE.value,
    MetricKey.STEPS.value,
}
PRIVATE = NodePrivacy(max_epsilon=8.0)
DECLARED = NodePrivacy(max_epsilon=8.0, public_record_count=True)
EVAL_DATASET = "tiny-eval"


def _node(folder: Path, records: int) -> Path:
    folder.mkdir(parents=True)
    docs = [{"id": f"d{i}", "text": f"document {i} about topic {i % 3}"} for i in range(5)]
    rows = [
        {"query_id": f"q{i}", "query": f"question {i} on topic {i % 3}", "doc_id": f"d{i}"}
        for i in range(records)
    ]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _eval_dataset(root: Path) -> Path:
    """A BEIR folder small enough to score each round in a moment."""
    folder = root / EVAL_DATASET
    (folder / "qrels").mkdir(parents=True)
    corpus = [{"_id": f"e{i}", "title": "", "text": f"evaluation text {i}"} for i in range(4)]
    queries = [{"_id": f"t{i}", "text": f"evaluation question {i}"} for i in range(2)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nt0\te0\t1\nt1\te1\t1\n")
    return root


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Node and coordinator kits after the members' CKKS key ceremony."""
    root = tmp_path_factory.mktemp("kits") / "kits"
    provision(root, node_ids=list(NODES))
    run_ckks_ceremony(root)
    return root


def _train_message(settings: RoundSettings) -> Message:
    return train_message({**settings.to_record(), SERVER_ROUND_KEY: 1}, dim=DIM)


def _node_config(node: Path, operator: NodePrivacy, kit: Path | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        NodeConfigKey.DATA_DIR.value: str(node),
        NodeConfigKey.NODE_NAME.value: node.name,
        **operator.to_node_config(),
    }
    if kit is not None:
        config[NodeConfigKey.KIT_DIR.value] = str(kit)
    return config


def _ask(node: Path, settings: RoundSettings, operator: NodePrivacy, kit: Path | None) -> Message:
    """The real ClientApp (every mod a SuperNode runs) answers one train message."""
    context = Context(
        run_id=1,
        node_id=7,
        node_config=_node_config(node, operator, kit),
        state=RecordDict(),
        run_config={},
    )
    return client_app(_train_message(settings), context)


def _settings(aggregation: str, **overrides: Any) -> RoundSettings:
    return RoundSettings(num_server_rounds=1, run_tag="run-1", aggregation=aggregation, **overrides)


CASES = [
    # (weighting, operator, the count is sent)
    ("uniform", PRIVATE, False),
    ("uniform", DECLARED, False),  # declared, but not asked for: it stays on the node
    ("declared-counts", DECLARED, True),
]


@pytest.mark.parametrize(("weighting", "operator", "count_sent"), CASES)
def test_a_plaintext_reply_holds_privacy_bookkeeping_and_only_a_declared_count(
    tmp_path: Path, weighting: str, operator: NodePrivacy, count_sent: bool
) -> None:
    # Prepare
    node = _node(tmp_path / "node-0", records=3)
    # Execute
    reply = _ask(node, _settings("plaintext", weighting=weighting), operator, kit=None)
    # Assert: the weights and the metrics are all that leave the node.
    assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
    assert set(reply.content.keys()) == {ContentKey.ARRAYS.value, ContentKey.METRICS.value}
    metrics = dict(reply.content.metric_records[ContentKey.METRICS.value])
    count = {MetricKey.NUM_EXAMPLES.value} if count_sent else set()
    assert set(metrics) <= BOOKKEEPING | count
    assert MetricKey.EPSILON.value in metrics
    assert metrics.get(MetricKey.NUM_EXAMPLES.value) == (3.0 if count_sent else None)


@pytest.mark.parametrize(("weighting", "operator", "count_sent"), CASES)
@pytest.mark.parametrize("shares", [0, 1])
def test_a_ckks_reply_holds_ciphertexts_bookkeeping_and_only_a_declared_count(
    tmp_path: Path,
    kits: Path,
    weighting: str,
    operator: NodePrivacy,
    count_sent: bool,
    shares: int,
) -> None:
    # Prepare
    node = _node(tmp_path / "node-0", records=3)
    settings = _settings("ckks", weighting=weighting, dp_noise_shares=shares)
    # Execute
    reply = _ask(node, settings, operator, kit=kits / "nodes" / "node-0")
    # Assert: ciphertexts and metrics only; no plaintext weights, no undeclared count.
    assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
    assert ContentKey.ARRAYS.value not in reply.content.array_records
    assert set(reply.content.config_records) == {ContentKey.CKKS_UPDATE.value}
    metrics = dict(reply.content.metric_records[ContentKey.METRICS.value])
    count = {MetricKey.NUM_EXAMPLES.value} if count_sent else set()
    assert set(metrics) <= BOOKKEEPING | count
    assert metrics.get(MetricKey.NUM_EXAMPLES.value) == (3.0 if count_sent else None)
    # Under distributed DP with uniform weights the count goes inside the secure sum, as
    # one more DP-noised slot; nowhere else.
    size = sum(a.numel() for a in Adapter(DIM, side=AdapterSide.QUERY).state_dict().values())
    slot = 1 if shares and weighting == "uniform" else 0
    update = reply.content.config_records[ContentKey.CKKS_UPDATE.value]
    assert update[CkksField.LENGTH.value] == size + slot


@pytest.mark.parametrize("aggregation", ["plaintext", "ckks"])
def test_a_declared_counts_round_without_a_declaration_is_refused_and_nothing_is_charged(
    tmp_path: Path, kits: Path, aggregation: str
) -> None:
    # Prepare
    node = _node(tmp_path / "node-0", records=3)
    kit = kits / "nodes" / "node-0" if aggregation == "ckks" else None
    # Execute
    reply = _ask(node, _settings(aggregation, weighting="declared-counts"), PRIVATE, kit)
    # Assert: refused with the reason; no ledger, so nothing trained or charged.
    assert reply.has_error()
    assert reply.error.code == ERROR_CODE_NODE_REFUSED
    assert "public-record-count" in str(reply.error.reason)
    assert not (node / "state" / LEDGER_FILE).exists()


def _federation(
    tmp_path: Path, kits: Path, operator: NodePrivacy, **overrides: Any
) -> tuple[Path, dict[str, np.ndarray]]:
    """One in-process federation round over ``NODES``; returns its output folder, adapter."""
    members = {name: _node(tmp_path / "members" / name, n) for name, n in NODES.items()}
    out = tmp_path / "out"
    config = FederationConfig(
        **{
            "num_server_rounds": 1,
            "run_tag": "run-1",
            "coordinator_kit": str(kits / "coordinator"),
            "allow_insecure_plaintext": True,
            "min_nodes": len(NODES),
            "learning_rate": 0.05,
            "eval_dataset": EVAL_DATASET,
            "data_dir": str(_eval_dataset(tmp_path / "data")),
            "out_dir": str(out),
            "round_timeout": 60.0,
            **overrides,
        }
    )
    if config.aggregation == SECAGGPLUS:
        # The in-process grid registers no SuperNode keys, so SecAgg+ enrolment cannot be
        # checked against a kit here (tests/coordinator/test_authorised_grid.py does that).
        config = dataclasses.replace(config, coordinator_kit="")
    grid = LoopbackNodes(
        client_app,
        {
            100 + i: _node_config(folder, operator, kits / "nodes" / name)
            for i, (name, folder) in enumerate(members.items())
        },
    )
    if config.aggregation == SECAGGPLUS:
        server = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
        run_secaggplus_federation(grid, server, config)
    else:
        run_federation(grid, config)
    adapter = Adapter.load(out / ADAPTER_DIR).state_dict()
    return out, {k: v.detach().numpy() for k, v in adapter.items()}


def _per_node_entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [report for entry in document["rounds"] for report in entry["nodes"].values()]


@pytest.mark.usefixtures("server_app_process")
@pytest.mark.parametrize("aggregation", ["plaintext", "ckks", SECAGGPLUS])
def test_the_manifest_keeps_no_per_node_counts_even_where_counts_were_declared(
    tmp_path: Path, kits: Path, aggregation: str
) -> None:
    # Execute: the nodes declared their counts, and the run weighs by them.
    out, _ = _federation(
        tmp_path, kits, DECLARED, aggregation=aggregation, weighting="declared-counts"
    )
    # Assert: which nodes answered and their epsilons; no count, loss, norm or timing.
    manifest = Adapter.read_manifest(out / ADAPTER_DIR)["metadata"]
    ledger = json.loads((out / FEDERATION_LEDGER_FILE).read_text())
    for document in (manifest["ledger"], ledger):
        reports = _per_node_entries(document)
        assert len(reports) == len(NODES)
        allowed = {"answered", "epsilon", "noise_multiplier", "sample_rate", "steps"}
        assert all({"answered", "epsilon"} <= set(report) <= allowed for report in reports)
    text = json.dumps(manifest) + json.dumps(ledger)
    for key in ("num_examples", "num-examples", "train-loss", "update-norm", "records"):
        assert f'"{key}":' not in text  # no such field anywhere (prose may say "records")


def _quantization(weighting: str) -> float:
    """SecAgg+'s worst-case error per value (unit weights quantize with max_weight 1)."""
    declared = weighting == "declared-counts"
    return quantization_tolerance(
        num_nodes=len(NODES),
        total_weight=float(sum(NODES.values())) if declared else float(len(NODES)),
        max_weight=DEFAULT_MAX_WEIGHT if declared else 1.0,
        clipping_range=UNCLIPPED_CLIPPING_RANGE,
        quantization_range=DEFAULT_QUANTIZATION_RANGE,
    )


@pytest.mark.usefixtures("server_app_process")
@pytest.mark.parametrize(
    ("weighting", "operator"), [("uniform", PRIVATE), ("declared-counts", DECLARED)]
)
def test_secure_aggregation_divides_by_the_same_public_denominator_as_plaintext_fedavg(
    tmp_path: Path, kits: Path, weighting: str, operator: NodePrivacy
) -> None:
    # Prepare: rounds without DP train deterministically, so every mode sees equal updates
    # (the nodes hold 2 and 4 records: the two weightings differ).
    relaxed = NodePrivacy(
        max_epsilon=8.0, require_dp=False, public_record_count=operator.public_record_count
    )
    common = {"dp_enabled": False, "weighting": weighting}
    # Execute
    _, plain = _federation(tmp_path / "plaintext", kits, relaxed, aggregation="plaintext", **common)
    _, ckks = _federation(tmp_path / "ckks", kits, relaxed, aggregation="ckks", **common)
    _, masked = _federation(tmp_path / "secagg", kits, relaxed, aggregation=SECAGGPLUS, **common)
    # Assert: equal up to CKKS precision and SecAgg+ quantization, and the adapter moved.
    initial = Adapter(DIM, side=AdapterSide.QUERY).state_dict()
    for name, value in plain.items():
        np.testing.assert_allclose(ckks[name], value, atol=1e-5)
        np.testing.assert_allclose(masked[name], value, atol=_quantization(weighting))
    assert any(np.abs(plain[k] - initial[k].numpy()).max() > 1e-4 for k in plain)


@pytest.mark.usefixtures("server_app_process")
def test_distributed_dp_with_uniform_weights_releases_a_finite_step(
    tmp_path: Path, kits: Path
) -> None:
    # Execute: two noise shares; the denominator is the DP-noised count slot of the sum.
    out, adapter = _federation(
        tmp_path, kits, PRIVATE, aggregation="ckks", dp_noise_shares=2, target_epsilon=8.0
    )
    # Assert: the round was released and every node charged its ledger once.
    ledger = json.loads((out / FEDERATION_LEDGER_FILE).read_text())
    assert [entry["released"] for entry in ledger["rounds"]] == [True]
    assert all(np.isfinite(v).all() for v in adapter.values())
    for name in NODES:
        entries = json.loads((tmp_path / "members" / name / "state" / LEDGER_FILE).read_text())
        assert [e["round"] for e in entries["entries"]] == [1]
