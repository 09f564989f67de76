"""Threat: a node's ledger written by several processes, and a coordinator replaying a round.

Two SuperNode processes (or a node and its operator's CLI) may charge the same ledger at
once; without a lock around reload-check-write, one overwrites the other's charges and
the node forgets privacy it spent. A coordinator that asks for the same round twice gets
two noisy answers for one charge, unless the second is refused.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from client_node.local_round import LEDGER_FILE, run_local_round
from embedding_core.adapter import Adapter, AdapterSide
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings
from privacy import LedgerError, PrivacyLedger

CHARGES_PER_PROCESS = 150
NOISE = 50.0  # tiny charges: 300 of them stay far inside the budget


def _open(path: Path) -> PrivacyLedger:
    return PrivacyLedger.open(path, node_id="node-x", max_epsilon=1000.0, delta=1e-5)


def _charge_many(path: str, run_id: str, start: multiprocessing.synchronize.Event) -> None:
    ledger = _open(Path(path))
    start.wait()
    for round_number in range(CHARGES_PER_PROCESS):
        ledger.charge(
            noise_multiplier=NOISE, sample_rate=1.0, steps=1, run_id=run_id, round=round_number
        )


def test_two_processes_charging_one_ledger_lose_no_charge(tmp_path: Path) -> None:
    # Prepare: one ledger, two real processes released together.
    path = tmp_path / "ledger.json"
    _open(path)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_charge_many, args=(str(path), run_id, start))
        for run_id in ("run-a", "run-b")
    ]
    for worker in workers:
        worker.start()
    # Execute
    start.set()
    for worker in workers:
        worker.join()
    # Assert: every charge of both processes is on disk.
    assert [w.exitcode for w in workers] == [0, 0]
    entries = json.loads(path.read_text())["entries"]
    assert len(entries) == 2 * CHARGES_PER_PROCESS
    assert {(e["run_id"], e["round"]) for e in entries} == {
        (run, r) for run in ("run-a", "run-b") for r in range(CHARGES_PER_PROCESS)
    }


def test_a_replayed_round_is_refused_and_charges_nothing(tmp_path: Path) -> None:
    ledger = _open(tmp_path / "ledger.json")
    ledger.charge(noise_multiplier=NOISE, sample_rate=1.0, steps=1, run_id="r", round=3)
    before = (tmp_path / "ledger.json").read_bytes()

    with pytest.raises(LedgerError, match="round 3 of run 'r'"):
        ledger.charge(noise_multiplier=NOISE, sample_rate=1.0, steps=1, run_id="r", round=3)

    assert (tmp_path / "ledger.json").read_bytes() == before


def test_a_coordinator_replaying_a_round_is_refused_before_the_node_trains(
    tmp_path: Path,
) -> None:
    # Prepare: a node whose ledger already holds round 1 of run "r".
    node = tmp_path / "node"
    (node / "state").mkdir(parents=True)
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(3)]
    records = [{"query_id": f"q{i}", "query": f"question {i}", "doc_id": f"d{i}"} for i in range(2)]
    (node / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (node / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    ledger_path = node / "state" / LEDGER_FILE
    PrivacyLedger.open(ledger_path, node_id="node-x", max_epsilon=8.0, delta=1e-5).charge(
        noise_multiplier=NOISE, sample_rate=1.0, steps=1, run_id="r", round=1
    )
    before = ledger_path.read_bytes()
    # Execute: the same round again; the model path does not exist, so a node that went
    # on to load the model would fail differently.
    with pytest.raises(LedgerError, match="already trained"):
        run_local_round(
            node_dir=node,
            node_name="node-x",
            global_state=Adapter(384, side=AdapterSide.QUERY, seed=0).state_dict(),
            settings=RoundSettings(num_server_rounds=2, run_tag="r", target_epsilon=8.0),
            server_round=1,
            node_privacy=NodePrivacy(max_epsilon=8.0),
            model_path=str(tmp_path / "no-such-model"),
        )
    # Assert: nothing was charged.
    assert ledger_path.read_bytes() == before
