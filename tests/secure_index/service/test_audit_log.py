"""Hash-chained audit log: appends verify, every kind of tampering is found at the right
line, concurrent appends chain, reopening resumes (or refuses a damaged tail), and the
detail guard keeps vectors and texts out."""

from __future__ import annotations

import hashlib
import json
import re
import stat
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedding_core.errors import DataFormatError
from secure_index.service.audit_log import (
    GENESIS_HASH,
    AuditLog,
    AuditRecord,
    anchor_path,
    verify_audit_log,
)

ENTRIES = 6


def _append(log: AuditLog, i: int, **detail: Any) -> AuditRecord:
    return log.append(
        actor=f"key{i:08d}",
        role="partner",
        action="query",
        collection="claims",
        decision="allow" if i % 2 == 0 else "deny:scope",
        detail={"k": 10, "results": [f"doc-{i}", "doc-x"], **detail},
    )


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        for i in range(ENTRIES):
            _append(log, i)
    return path


def _lines(path: Path) -> list[str]:
    return re.findall(r"[^\n]*\n|[^\n]+$", path.read_text(encoding="utf-8"))


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines), encoding="utf-8")


def _rehash(line: str, **changes: Any) -> str:
    """A forged line whose own hash is recomputed (the forger knows the algorithm)."""
    fields = json.loads(line) | changes
    body = {k: v for k, v in fields.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    fields["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    return json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n"


def test_appended_records_chain_and_verify(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    # Execute
    records = [_append(log, i) for i in range(3)]
    result = verify_audit_log(path)
    # Assert
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    assert log.head == (3, records[-1].hash)
    assert result.ok
    assert (result.entries, result.head_hash, result.problem, result.line) == (
        3,
        records[-1].hash,
        None,
        None,
    )
    assert json.loads(anchor_path(path).read_text()) == {"seq": 3, "hash": records[-1].hash}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(anchor_path(path).stat().st_mode) == 0o600


def test_record_hash_matches_the_documented_definition(tmp_path: Path) -> None:
    # The hash an outside auditor computes with nothing but hashlib and json
    with AuditLog(tmp_path / "audit.jsonl") as log:
        record = _append(log, 0, reason="top-k cap", note="é")
    line = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    fields = json.loads(line)
    body = {k: v for k, v in fields.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == record.hash == fields["hash"]
    assert fields["detail"] == {"k": 10, "results": ["doc-0", "doc-x"], "reason": "top-k cap",
                                "note": "é"}  # fmt: skip


def test_an_empty_log_verifies_with_the_genesis_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).close()
    result = verify_audit_log(path, expected_head=GENESIS_HASH)
    assert (result.ok, result.entries, result.head_hash) == (True, 0, GENESIS_HASH)


def _tamper_edit_field(lines: list[str]) -> list[str]:
    lines[2] = lines[2].replace('"decision":"allow"', '"decision":"deny:scope"')
    return lines


def _tamper_edit_detail(lines: list[str]) -> list[str]:
    lines[3] = lines[3].replace('"doc-3"', '"doc-9"')
    return lines


def _tamper_edit_and_rehash(lines: list[str]) -> list[str]:
    lines[2] = _rehash(lines[2], decision="deny:scope")
    return lines


def _tamper_delete_middle(lines: list[str]) -> list[str]:
    del lines[2]
    return lines


def _tamper_swap(lines: list[str]) -> list[str]:
    lines[2], lines[3] = lines[3], lines[2]
    return lines


def _tamper_delete_last(lines: list[str]) -> list[str]:
    return lines[:-1]


def _tamper_insert_forged(lines: list[str]) -> list[str]:
    previous = json.loads(lines[1])
    forged = _rehash(lines[1], seq=3, prev_hash=previous["hash"], actor="forger")
    return [*lines[:2], forged, *lines[2:]]


def _tamper_insert_garbage(lines: list[str]) -> list[str]:
    return [*lines[:4], "this is not json\n", *lines[4:]]


def _tamper_blank_line(lines: list[str]) -> list[str]:
    return [*lines[:1], "\n", *lines[1:]]


def _tamper_torn_tail(lines: list[str]) -> list[str]:
    lines[-1] = lines[-1][:40]
    return lines


def _tamper_extra_field(lines: list[str]) -> list[str]:
    fields = json.loads(lines[1]) | {"extra": 1}
    lines[1] = json.dumps(fields) + "\n"
    return lines


@pytest.mark.parametrize(
    ("tamper", "line", "problem"),
    [
        (_tamper_edit_field, 3, "the record was edited"),
        (_tamper_edit_detail, 4, "the record was edited"),
        (_tamper_edit_and_rehash, 4, "prev_hash is not the previous record's hash"),
        (_tamper_delete_middle, 3, "seq 4 on line 3"),
        (_tamper_swap, 3, "seq 4 on line 3"),
        (_tamper_delete_last, 6, "records were removed from its end"),
        (_tamper_insert_forged, 4, "seq 3 on line 4"),
        (_tamper_insert_garbage, 5, "not a JSON record"),
        (_tamper_blank_line, 2, "not a JSON record"),
        (_tamper_torn_tail, 6, "no line end"),
        (_tamper_extra_field, 2, "unexpected ['extra']"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)).removeprefix("_tamper_"),
)
def test_tampering_is_detected_at_the_first_bad_line(
    log_path: Path, tamper: Any, line: int, problem: str
) -> None:
    # Prepare
    assert verify_audit_log(log_path).ok
    _write(log_path, tamper(_lines(log_path)))
    # Execute
    result = verify_audit_log(log_path)
    # Assert
    assert not result.ok
    assert result.line == line
    assert result.problem is not None
    assert problem in result.problem
    assert result.entries == line - 1


def test_truncation_is_detected_with_the_recorded_head_even_if_the_anchor_is_rolled_back(
    log_path: Path,
) -> None:
    # Prepare: the auditor recorded the head; an attacker drops two records and rewrites
    # the anchor to match the new end
    recorded = verify_audit_log(log_path).head_hash
    lines = _lines(log_path)[:-2]
    _write(log_path, lines)
    last = json.loads(lines[-1])
    anchor_path(log_path).write_text(json.dumps({"seq": last["seq"], "hash": last["hash"]}))
    # Execute
    without = verify_audit_log(log_path)
    with_head = verify_audit_log(log_path, expected_head=recorded)
    # Assert
    assert without.ok  # the documented limit of a keyless chain
    assert not with_head.ok
    assert with_head.problem is not None
    assert "the head hash you recorded is not in the log" in with_head.problem


def test_a_recorded_head_of_an_earlier_state_still_verifies(log_path: Path) -> None:
    recorded = verify_audit_log(log_path).head_hash
    with AuditLog(log_path) as log:
        _append(log, 99)
    assert verify_audit_log(log_path, expected_head=recorded).ok
    assert not verify_audit_log(log_path, expected_head="f" * 64).ok
    assert not verify_audit_log(log_path, expected_head="not-a-hash").ok


def test_records_appended_behind_the_anchor_are_detected(log_path: Path) -> None:
    # Prepare: two well-formed records appended by someone who did not update the anchor
    lines = _lines(log_path)
    last = json.loads(lines[-1])
    first = _rehash(lines[-1], seq=7, prev_hash=last["hash"])
    second = _rehash(lines[-1], seq=8, prev_hash=json.loads(first)["hash"])
    _write(log_path, [*lines, first, second])
    # Execute
    result = verify_audit_log(log_path)
    # Assert
    assert not result.ok
    assert result.line == 8
    assert result.problem is not None
    assert "follow the head anchor" in result.problem


def test_a_missing_or_malformed_anchor_is_reported(log_path: Path) -> None:
    anchor = anchor_path(log_path)
    anchor.write_text("{garbage")
    malformed = verify_audit_log(log_path)
    anchor.unlink()
    missing = verify_audit_log(log_path)
    assert not malformed.ok
    assert "malformed" in (malformed.problem or "")
    assert not missing.ok
    assert "missing" in (missing.problem or "")


def test_a_missing_log_is_not_ok(tmp_path: Path) -> None:
    result = verify_audit_log(tmp_path / "nothing.jsonl")
    assert not result.ok
    assert "cannot read the audit log" in (result.problem or "")


def test_concurrent_appends_from_16_threads_chain_correctly(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    barrier = threading.Barrier(16)
    failures: list[BaseException] = []

    def worker(t: int) -> None:
        barrier.wait()
        try:
            for i in range(10):
                _append(log, t * 100 + i, thread=t)
        except BaseException as exc:  # re-checked in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    # Execute
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify_audit_log(path)
    # Assert
    assert failures == []
    assert result.ok, result.problem
    assert result.entries == 160
    assert log.head == (160, result.head_hash)
    records = [json.loads(line) for line in _lines(path)]
    assert sorted(r["actor"] for r in records) == sorted(
        f"key{t * 100 + i:08d}" for t in range(16) for i in range(10)
    )


def test_two_logs_on_one_file_interleave_into_one_chain(tmp_path: Path) -> None:
    # e.g. two worker processes of one gateway: each notices the other's appends
    path = tmp_path / "audit.jsonl"
    a, b = AuditLog(path), AuditLog(path)
    for i in range(4):
        _append(a if i % 2 == 0 else b, i)
    assert verify_audit_log(path).entries == 4
    assert verify_audit_log(path).ok


def test_reopening_resumes_the_chain(log_path: Path) -> None:
    # Prepare
    before = verify_audit_log(log_path)
    # Execute
    with AuditLog(log_path) as log:
        resumed = log.head
        record = _append(log, 7)
    # Assert
    assert resumed == (ENTRIES, before.head_hash)
    assert record.seq == ENTRIES + 1
    assert record.prev_hash == before.head_hash
    assert verify_audit_log(log_path).ok


def test_reopening_after_a_crash_before_the_anchor_update_resumes(log_path: Path) -> None:
    # Prepare: the anchor is one record behind, as after a crash between the two writes
    lines = _lines(log_path)
    previous = json.loads(lines[-2])
    anchor_path(log_path).write_text(json.dumps({"seq": ENTRIES - 1, "hash": previous["hash"]}))
    assert verify_audit_log(log_path).ok
    # Execute
    with AuditLog(log_path) as log:
        head = log.head
    # Assert
    assert head[0] == ENTRIES
    assert json.loads(anchor_path(log_path).read_text())["seq"] == ENTRIES


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_tamper_edit_detail, "the record was edited"),
        (_tamper_torn_tail, "no line end"),
        (_tamper_delete_last, "records were removed from its end"),
        (lambda lines: [*lines, "garbage\n"], "not a JSON record"),
    ],
)
def test_reopening_refuses_a_damaged_tail(log_path: Path, tamper: Any, message: str) -> None:
    # Prepare: damage at the end (the edit test edits line 4 of 6, so edit the last)
    lines = _lines(log_path)
    if tamper is _tamper_edit_detail:
        lines[-1] = lines[-1].replace('"doc-5"', '"doc-9"')
    else:
        lines = tamper(lines)
    _write(log_path, lines)
    # Execute / Assert
    with pytest.raises(DataFormatError, match=message) as info:
        AuditLog(log_path)
    assert "verify-audit" in info.value.fix


def test_reopening_refuses_a_malformed_anchor(log_path: Path) -> None:
    anchor_path(log_path).write_text('{"seq": 6}')
    with pytest.raises(DataFormatError, match=r"head anchor .* is malformed"):
        AuditLog(log_path)


@pytest.mark.parametrize(
    ("detail", "message"),
    [
        ({"vector": [0.1] * 9}, "list of 9 numbers"),
        ({"nested": {"q": [1, 2, 3, 4, 5, 6, 7, 8, 0.5]}}, "detail.nested.q is a list of 9"),
        ({"rows": [[0.5] * 384]}, "list of 384 numbers"),
        ({"text": "x" * 513}, "string of 513 characters"),
        ({"x" * 600: 1}, "string of 600 characters"),
        ({"array": object()}, "not JSON"),
        ({1: "non-string key"}, "non-string key"),
    ],
)
def test_the_guard_rejects_vectors_texts_and_non_json(
    tmp_path: Path, detail: dict[Any, Any], message: str
) -> None:
    # Prepare
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    # Execute / Assert
    with pytest.raises(ValueError, match=message):
        log.append(
            actor="k", role="partner", action="query", collection="c", decision="allow",
            detail=detail,
        )  # fmt: skip
    assert path.read_bytes() == b""
    assert log.head == (0, GENESIS_HASH)


def test_the_guard_lets_ids_counts_and_short_lists_through(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.jsonl") as log:
        record = log.append(
            actor="k", role="partner", action="query", collection="c", decision="allow",
            detail={"k": 1000, "results": [f"doc-{i}" for i in range(1000)],
                    "scores": [0.5] * 8, "counts": list(range(50)), "reason": "x" * 512},
        )  # fmt: skip
    assert len(record.detail["results"]) == 1000


def test_a_long_top_level_field_is_rejected(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.jsonl") as log, pytest.raises(ValueError, match="collection"):
        log.append(
            actor="k", role="partner", action="query", collection="q" * 600, decision="allow",
            detail={},
        )  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(details=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=5))
def test_any_json_detail_round_trips_and_verifies(
    tmp_path: Path, details: list[dict[str, Any]]
) -> None:
    # Prepare
    path = tmp_path / f"audit-{uuid.uuid4().hex}.jsonl"  # a fresh log per example
    # Execute
    with AuditLog(path) as log:
        records = [
            log.append(actor="a", role="node", action="upload", collection="c", decision="allow",
                       detail=d)
            for d in details
        ]  # fmt: skip
    result = verify_audit_log(path)
    # Assert
    assert result.ok, result.problem
    assert result.entries == len(details)
    stored = [json.loads(line)["detail"] for line in _lines(path)]
    assert stored == [r.detail for r in records] == details
