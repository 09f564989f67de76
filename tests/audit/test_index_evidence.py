"""Index evidence: encryption at rest and audit-log integrity of a real index data dir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audit.index_evidence import IndexDirectoryError, gather_index_evidence
from embedding_core.errors import FedembedError
from policies import (
    CHECK_AUDIT_LOG,
    CHECK_ENCRYPTION_AT_REST,
    EVIDENCE_AUDIT_LOG_INTACT,
    EVIDENCE_INDEX_ENCRYPTED_FRACTION,
    evaluate_audit,
    load_default_policy,
)
from secure_index.index.hnsw_collection import CollectionSpec
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog, anchor_path
from secure_index.service.settings import audit_path

DIM = 8
SECRET = "PATIENT-7 diagnosis text that must never reach a report"


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    """A data dir as `fedembed index serve` leaves it: sealed snapshot, WAL, audit log."""
    data = tmp_path / "index-data"
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    store = IndexStore(data / "store", keks=keks, tenant="consortium", background=False)
    vectors = np.random.default_rng(0).normal(size=(6, DIM)).astype(np.float32)
    store.create_collection(CollectionSpec("docs", DIM))
    store.upsert("docs", [f"a{i}" for i in range(5)], vectors[:5], owner="node-1")
    store.snapshot("docs")
    store.upsert("docs", ["b0"], vectors[5:], owner="node-1")  # stays in the WAL
    store.close(snapshot=False)
    with AuditLog(audit_path(data), keks=keks) as log:
        for action in ("upload", "query"):
            log.append(
                actor="key-1", role="partner", action=action, collection="docs",
                decision="allow", detail={"k": 5},
            )  # fmt: skip
    return data


def _collection(index_dir: Path) -> Path:
    return index_dir / "store" / "collections" / "docs"


def test_index_written_by_the_store_is_encrypted_and_its_log_intact(index_dir: Path) -> None:
    # Execute
    evidence = gather_index_evidence(index_dir)
    # Assert
    assert evidence.files_scanned >= 4  # manifest, graph, table and a WAL file
    assert evidence.files_encrypted == evidence.files_scanned
    assert evidence.encrypted_fraction == 1.0
    assert evidence.unencrypted_files == ()
    assert (evidence.audit_log_intact, evidence.audit_log_entries) == (True, 2)
    assert evidence.audit_log_problem is None
    last = json.loads(audit_path(index_dir).read_text().splitlines()[-1])
    assert evidence.audit_log_head_hash == last["hash"]
    assert evidence.to_evidence() == {
        EVIDENCE_INDEX_ENCRYPTED_FRACTION: 1.0,
        EVIDENCE_AUDIT_LOG_INTACT: 1.0,
    }
    checks = {c.id: c for c in evaluate_audit(load_default_policy().policy, evidence.to_evidence())}
    assert checks[CHECK_ENCRYPTION_AT_REST].status == "pass"
    assert checks[CHECK_AUDIT_LOG].status == "pass"


def test_report_section_is_json_with_counts_and_the_log_verdict(index_dir: Path) -> None:
    # Execute
    section = json.loads(json.dumps(gather_index_evidence(index_dir).to_dict()))
    # Assert
    assert section["path"] == str(index_dir)
    assert section["store"]["encrypted_fraction"] == 1.0
    assert section["store"]["files_scanned"] == section["store"]["files_encrypted"]
    assert section["audit_log"]["present"] is True
    assert section["audit_log"]["intact"] is True
    assert section["audit_log"]["entries"] == 2


def test_plaintext_file_lowers_the_fraction_and_is_named_without_its_content(
    index_dir: Path,
) -> None:
    # Prepare: a stray plaintext export next to the sealed files, one more in a sub-folder
    clean = gather_index_evidence(index_dir)
    (_collection(index_dir) / "export.jsonl").write_text(SECRET, encoding="utf-8")
    (_collection(index_dir) / "wal" / "dump.npy").write_bytes(b"\x93NUMPY" + b"\0" * 64)
    # Execute
    evidence = gather_index_evidence(index_dir)
    # Assert
    assert evidence.files_scanned == clean.files_scanned + 2
    assert evidence.files_encrypted == clean.files_encrypted
    assert evidence.encrypted_fraction == pytest.approx(
        clean.files_encrypted / (clean.files_encrypted + 2)
    )
    assert evidence.unencrypted_files == (
        "store/collections/docs/export.jsonl",
        "store/collections/docs/wal/dump.npy",
    )
    assert SECRET not in json.dumps(evidence.to_dict())
    check = next(
        c
        for c in evaluate_audit(load_default_policy().policy, evidence.to_evidence())
        if c.id == CHECK_ENCRYPTION_AT_REST
    )
    assert check.status == "fail"


def test_empty_and_lock_files_are_skipped_and_symlinks_never_count_as_encrypted(
    index_dir: Path,
) -> None:
    # Prepare: a symlink to a sealed file would pass if it were followed
    sealed = next(_collection(index_dir).glob("manifest-*.sealed"))
    (_collection(index_dir) / "empty.tmp").touch()
    (_collection(index_dir) / ".lock").touch()
    (_collection(index_dir) / "alias.sealed").symlink_to(sealed)
    # Execute
    evidence = gather_index_evidence(index_dir)
    # Assert
    assert evidence.files_skipped == 2
    assert evidence.unencrypted_files == ("store/collections/docs/alias.sealed",)
    assert evidence.encrypted_fraction < 1.0


def test_an_edited_audit_log_line_breaks_the_chain(index_dir: Path) -> None:
    # Prepare: turn the first decision from allow into deny without fixing the hash
    log = audit_path(index_dir)
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = lines[0].replace('"decision":"allow"', '"decision":"deny"')
    log.write_text("".join(lines), encoding="utf-8")
    # Execute
    evidence = gather_index_evidence(index_dir)
    # Assert
    assert evidence.audit_log_intact is False
    assert evidence.audit_log_problem is not None
    assert evidence.audit_log_problem.startswith("line 1:")
    assert "edited" in evidence.audit_log_problem
    assert evidence.to_evidence()[EVIDENCE_AUDIT_LOG_INTACT] == 0.0
    check = next(
        c
        for c in evaluate_audit(load_default_policy().policy, evidence.to_evidence())
        if c.id == CHECK_AUDIT_LOG
    )
    assert (check.status, check.value) == ("fail", 0.0)


def test_a_deleted_log_whose_anchor_remains_is_not_intact(index_dir: Path) -> None:
    audit_path(index_dir).unlink()

    evidence = gather_index_evidence(index_dir)

    assert evidence.audit_log_intact is False
    assert evidence.to_dict()["audit_log"]["present"] is True


def test_a_recorded_head_missing_from_the_log_is_not_intact(index_dir: Path) -> None:
    evidence = gather_index_evidence(index_dir, expected_head="ab" * 32)

    assert evidence.audit_log_intact is False
    assert evidence.audit_log_problem is not None
    assert "head hash you recorded" in evidence.audit_log_problem


def test_no_audit_log_and_no_collection_file_are_not_evaluated(index_dir: Path) -> None:
    # Prepare: a store-only host keeps no audit log; an empty store proves nothing
    log = audit_path(index_dir)
    log.unlink()
    anchor_path(log).unlink()
    for path in sorted(_collection(index_dir).rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    # Execute
    evidence = gather_index_evidence(index_dir)
    # Assert
    assert (evidence.files_scanned, evidence.audit_log_intact) == (0, None)
    assert evidence.to_evidence() == {
        EVIDENCE_INDEX_ENCRYPTED_FRACTION: None,
        EVIDENCE_AUDIT_LOG_INTACT: None,
    }
    statuses = {
        c.id: c.status for c in evaluate_audit(load_default_policy().policy, evidence.to_evidence())
    }
    assert statuses[CHECK_ENCRYPTION_AT_REST] == statuses[CHECK_AUDIT_LOG] == "not_evaluated"


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexDirectoryError) as info:
        gather_index_evidence(tmp_path / "nowhere")

    assert isinstance(info.value, FedembedError)
    assert str(tmp_path / "nowhere") in info.value.problem
    assert "--data-dir" in info.value.fix


def test_a_directory_without_a_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "audit").mkdir()

    with pytest.raises(IndexDirectoryError) as info:
        gather_index_evidence(tmp_path)

    assert "store/" in info.value.problem
    assert info.value.expected
