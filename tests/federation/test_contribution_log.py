"""The node's contribution log: one decryption per (run, round), even across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from federation.contribution_log import ContributionLog, ContributionRecord
from federation.contributions import DecryptionRefusedError

ENTRY = ContributionRecord(
    run_tag="run-1", server_round=1, flower_run_id=1, digest="00" * 32, noise_shares=3, length=4
)


def _accept(entry: ContributionRecord) -> None:
    """A decrypt request that passes every check."""


def _claim(path: str, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    try:
        ContributionLog(Path(path)).claim_decryption("run-1", 1, _accept)
        results.put("decrypted")  # type: ignore[attr-defined]
    except DecryptionRefusedError:
        results.put("refused")  # type: ignore[attr-defined]


def test_a_round_is_decrypted_once_and_a_new_contribution_starts_afresh(tmp_path: Path) -> None:
    # Prepare
    log = ContributionLog(tmp_path / "contributions.json")
    log.record(ENTRY)
    # Execute
    first = log.claim_decryption("run-1", 1, _accept)
    with pytest.raises(DecryptionRefusedError):
        log.claim_decryption("run-1", 1, _accept)
    with pytest.raises(DecryptionRefusedError):
        log.claim_decryption("run-1", 2, _accept)  # never contributed to round 2
    log.record(ContributionRecord(**{**ENTRY.__dict__, "flower_run_id": 2}))
    again = log.claim_decryption("run-1", 1, _accept)
    # Assert
    assert first == ENTRY
    assert again.flower_run_id == 2


def test_a_refused_check_does_not_use_up_the_round(tmp_path: Path) -> None:
    # Prepare
    log = ContributionLog(tmp_path / "contributions.json")
    log.record(ENTRY)

    def refuse(entry: ContributionRecord) -> None:
        raise DecryptionRefusedError()

    # Execute
    with pytest.raises(DecryptionRefusedError):
        log.claim_decryption("run-1", 1, refuse)
    # Assert
    assert log.claim_decryption("run-1", 1, _accept) == ENTRY


def test_racing_processes_decrypt_a_round_once(tmp_path: Path) -> None:
    # Prepare: eight processes ask for the same round at the same moment.
    path = tmp_path / "contributions.json"
    ContributionLog(path).record(ENTRY)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(8), context.Queue()
    workers = [context.Process(target=_claim, args=(str(path), barrier, results)) for _ in range(8)]
    # Execute
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    outcomes = sorted(results.get(timeout=10) for _ in workers)
    # Assert
    assert outcomes == ["decrypted"] + ["refused"] * 7


def test_a_node_endorses_one_set_per_round(tmp_path: Path) -> None:
    # Prepare
    log = ContributionLog(tmp_path / "contributions.json")
    log.record(ENTRY)
    # Execute
    first = log.claim_endorsement("run-1", 1, "aa" * 32, _accept)
    retried = log.claim_endorsement("run-1", 1, "aa" * 32, _accept)
    with pytest.raises(DecryptionRefusedError):
        log.claim_endorsement("run-1", 1, "bb" * 32, _accept)
    # Assert
    assert first.endorsed == retried.endorsed == "aa" * 32


def test_the_first_record_creates_the_state_folder(tmp_path: Path) -> None:
    # Prepare
    log = ContributionLog(tmp_path / "node" / "state" / "contributions.json")
    # Execute
    log.record(ENTRY)
    # Assert
    assert log.get("run-1", 1) == ENTRY
    assert log.get("run-1", 2) is None
