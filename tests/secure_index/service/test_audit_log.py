"""Hash-chained audit log: appends verify, every kind of tampering is found at the right
line, concurrent appends chain, reopening resumes (or refuses a damaged tail), and the
detail guard keeps vectors and texts out."""

from __future__ import annotations

import dataclasses
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
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_anchor import AnchorKey, encode_anchor
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
def keks(tmp_path: Path) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path / "kek.json")


@pytest.fixture
def log_path(tmp_path: Path, keks: KeyFileKeks) -> Path:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, keks=keks) as log:
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


def test_appended_records_chain_and_verify(tmp_path: Path, keks: KeyFileKeks) -> None:
    # Prepare
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, keks=keks)
    # Execute
    records = [_append(log, i) for i in range(3)]
    result = verify_audit_log(path, keks=keks)
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
    anchor = json.loads(anchor_path(path).read_text())
    assert (anchor["seq"], anchor["hash"], anchor["kek_id"]) == (3, records[-1].hash, "kek-1")
    assert anchor["record"] == dataclasses.asdict(records[-1])
    assert re.fullmatch("[0-9a-f]{64}", anchor["mac"])
    assert result.anchor_authenticated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(anchor_path(path).stat().st_mode) == 0o600


def test_record_hash_matches_the_documented_definition(tmp_path: Path, keks: KeyFileKeks) -> None:
    # The hash an outside auditor computes with nothing but hashlib and json
    with AuditLog(tmp_path / "audit.jsonl", keks=keks) as log:
        record = _append(log, 0, reason="top-k cap", note="é")
    line = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    fields = json.loads(line)
    body = {k: v for k, v in fields.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == record.hash == fields["hash"]
    assert fields["detail"] == {"k": 10, "results": ["doc-0", "doc-x"], "reason": "top-k cap",
                                "note": "é"}  # fmt: skip


def test_an_empty_log_verifies_with_the_genesis_head(tmp_path: Path, keks: KeyFileKeks) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, keks=keks).close()
    result = verify_audit_log(path, keks=keks, expected_head=GENESIS_HASH)
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


def _tamper_delete_last_two(lines: list[str]) -> list[str]:
    return lines[:-2]


def _tamper_insert_forged(lines: list[str]) -> list[str]:
    previous = json.loads(lines[1])
    forged = _rehash(lines[1], seq=3, prev_hash=previous["hash"], actor="forger")
    return [*lines[:2], forged, *lines[2:]]


def _tamper_insert_garbage(lines: list[str]) -> list[str]:
    return [*lines[:4], "this is not json\n", *lines[4:]]


def _tamper_blank_line(lines: list[str]) -> list[str]:
    return [*lines[:1], "\n", *lines[1:]]


def _tamper_unended_tail(lines: list[str]) -> list[str]:
    return [*lines, '{"seq":7']


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
        (_tamper_delete_last_two, 5, "records were removed from its end"),
        (_tamper_insert_forged, 4, "seq 3 on line 4"),
        (_tamper_insert_garbage, 5, "not a JSON record"),
        (_tamper_blank_line, 2, "not a JSON record"),
        (_tamper_unended_tail, 7, "no line end"),
        (_tamper_extra_field, 2, "unexpected ['extra']"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)).removeprefix("_tamper_"),
)
def test_tampering_is_detected_at_the_first_bad_line(
    log_path: Path, tamper: Any, line: int, problem: str, keks: KeyFileKeks
) -> None:
    # Prepare
    assert verify_audit_log(log_path, keks=keks).ok
    _write(log_path, tamper(_lines(log_path)))
    # Execute
    result = verify_audit_log(log_path, keks=keks)
    # Assert
    assert not result.ok
    assert result.line == line
    assert result.problem is not None
    assert problem in result.problem
    assert result.entries == line - 1


def _forged_anchor(path: Path, seq: int, head: str, record: dict[str, Any] | None) -> None:
    """An anchor written by an attacker without the KEK: the format is public, so they make
    their own MAC key, wrap it under a KEK of their own (same id) and MAC the new head."""
    attacker = KeyFileKeks.create(path.with_name("attacker-kek.json"))
    anchor_path(path).write_bytes(encode_anchor(AnchorKey.create(attacker), seq, head, record))


def _cut_tail_and_rewrite_anchor(path: Path, keep: int) -> None:
    lines = _lines(path)[:keep]
    _write(path, lines)
    last = json.loads(lines[-1]) if lines else None
    _forged_anchor(path, keep, last["hash"] if last else GENESIS_HASH, last)


@pytest.mark.parametrize("keep", [4, 0], ids=["cut-tail", "emptied"])
def test_a_cut_or_emptied_log_with_a_rewritten_anchor_is_refused(
    log_path: Path, keks: KeyFileKeks, keep: int
) -> None:
    # Prepare: the attacker drops records (or all of them) and writes a matching anchor
    _cut_tail_and_rewrite_anchor(log_path, keep)
    # Execute
    verified = verify_audit_log(log_path, keks=keks)
    keyless = verify_audit_log(log_path)  # an auditor without the KEK
    with pytest.raises(DataFormatError, match="does not unwrap") as refused:
        AuditLog(log_path, keks=keks)
    # Assert
    assert not verified.ok
    assert "does not unwrap under KEK version 'kek-1'" in (verified.problem or "")
    assert "restore the log and its .head anchor" in (verified.problem or "")
    assert "verify-audit" in refused.value.fix
    assert keyless.ok
    assert not keyless.anchor_authenticated
    assert "MAC was not checked" in (keyless.note or "")


def test_an_anchor_edited_in_place_fails_its_mac(log_path: Path, keks: KeyFileKeks) -> None:
    # Prepare: head moved back two records, the record copy swapped, the MAC left as it was
    lines = _lines(log_path)[:-2]
    _write(log_path, lines)
    anchor = json.loads(anchor_path(log_path).read_text())
    last = json.loads(lines[-1])
    anchor |= {"seq": last["seq"], "hash": last["hash"], "record": last}
    anchor_path(log_path).write_text(json.dumps(anchor))
    # Execute
    result = verify_audit_log(log_path, keks=keks)
    # Assert
    assert not result.ok
    assert "its MAC does not verify" in (result.problem or "")


def test_an_unkeyed_anchor_is_refused(log_path: Path, keks: KeyFileKeks) -> None:
    lines = _lines(log_path)[:-2]
    _write(log_path, lines)
    last = json.loads(lines[-1])
    anchor_path(log_path).write_text(json.dumps({"seq": last["seq"], "hash": last["hash"]}))
    result = verify_audit_log(log_path, keks=keks)
    assert not result.ok
    assert "has no MAC" in (result.problem or "")
    with pytest.raises(DataFormatError, match="has no MAC"):
        AuditLog(log_path, keks=keks)


@pytest.mark.parametrize("emptied", [True, False], ids=["log-emptied", "log-deleted"])
def test_a_log_emptied_or_deleted_with_its_anchor_is_not_ok(
    log_path: Path, keks: KeyFileKeks, emptied: bool
) -> None:
    # Prepare: the attacker removes the anchor and empties (or deletes) the log
    anchor_path(log_path).unlink()
    if emptied:
        log_path.write_bytes(b"")
    else:
        log_path.unlink()
    # Execute
    result = verify_audit_log(log_path, keks=keks)
    # Assert
    assert not result.ok
    expected = "anchor" if emptied else "no audit log"
    assert expected in (result.problem or "")
    assert "restore the log and its .head anchor" in (result.problem or "")


def test_a_missing_anchor_on_a_nonempty_log_is_refused(log_path: Path, keks: KeyFileKeks) -> None:
    anchor_path(log_path).unlink()
    result = verify_audit_log(log_path, keks=keks)
    assert not result.ok
    assert "is missing" in (result.problem or "")
    with pytest.raises(DataFormatError, match=r"head anchor .* is missing"):
        AuditLog(log_path, keks=keks)


def test_verification_with_another_kek_names_the_problem(log_path: Path, tmp_path: Path) -> None:
    other = KeyFileKeks.create(tmp_path / "other.json")  # a different kek-1
    later = KeyFileKeks.create(tmp_path / "later.json")
    later.rotate()
    later.retire("kek-1")
    wrong = verify_audit_log(log_path, keks=other)
    unknown = verify_audit_log(log_path, keks=later)
    assert not wrong.ok
    assert not unknown.ok
    assert "does not unwrap under KEK version 'kek-1'" in (wrong.problem or "")
    assert "which the given KEKs do not hold" in (unknown.problem or "")


def test_a_kek_rotation_rewraps_the_anchor_key(log_path: Path, keks: KeyFileKeks) -> None:
    # Prepare
    keks.rotate()
    # Execute: the next open re-wraps the MAC key under the new primary
    AuditLog(log_path, keks=keks).close()
    keks.retire("kek-1")
    # Assert
    assert json.loads(anchor_path(log_path).read_text())["kek_id"] == "kek-2"
    assert verify_audit_log(log_path, keks=keks).ok


def test_a_rollback_to_copies_is_caught_only_by_the_recorded_head(
    log_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare: the attacker copied the log and its anchor; later the auditor records the
    # head; then the attacker puts the old copies back (no KEK needed)
    old_log, old_anchor = log_path.read_bytes(), anchor_path(log_path).read_bytes()
    with AuditLog(log_path, keks=keks) as log:
        _append(log, 50)
        _append(log, 51)
    recorded = verify_audit_log(log_path, keks=keks).head_hash
    log_path.write_bytes(old_log)
    anchor_path(log_path).write_bytes(old_anchor)
    # Execute
    without = verify_audit_log(log_path, keks=keks)
    with_head = verify_audit_log(log_path, keks=keks, expected_head=recorded)
    # Assert
    assert without.ok  # the documented residual risk of any anchor kept on the host
    assert not with_head.ok
    assert "the head hash you recorded is not in the log" in (with_head.problem or "")


def test_a_recorded_head_of_an_earlier_state_still_verifies(
    log_path: Path, keks: KeyFileKeks
) -> None:
    recorded = verify_audit_log(log_path, keks=keks).head_hash
    with AuditLog(log_path, keks=keks) as log:
        _append(log, 99)
    assert verify_audit_log(log_path, keks=keks, expected_head=recorded).ok
    assert not verify_audit_log(log_path, keks=keks, expected_head="f" * 64).ok
    assert not verify_audit_log(log_path, keks=keks, expected_head="not-a-hash").ok


@pytest.mark.parametrize("forged", [1, 2])
def test_records_appended_behind_the_anchor_are_detected(
    log_path: Path, keks: KeyFileKeks, forged: int
) -> None:
    # Prepare: well-formed records appended by someone who cannot update the anchor
    lines = _lines(log_path)
    extra = [_rehash(lines[-1], seq=7, prev_hash=json.loads(lines[-1])["hash"])]
    extra.append(_rehash(lines[-1], seq=8, prev_hash=json.loads(extra[0])["hash"]))
    _write(log_path, [*lines, *extra[:forged]])
    # Execute
    result = verify_audit_log(log_path, keks=keks)
    # Assert
    assert not result.ok
    assert result.line == 7
    assert result.problem is not None
    assert "follow the head anchor" in result.problem
    with pytest.raises(DataFormatError, match="appended or rewritten behind"):
        AuditLog(log_path, keks=keks)


def test_a_missing_or_malformed_anchor_is_reported(log_path: Path, keks: KeyFileKeks) -> None:
    anchor = anchor_path(log_path)
    anchor.write_text("{garbage")
    malformed = verify_audit_log(log_path, keks=keks)
    anchor.unlink()
    missing = verify_audit_log(log_path, keks=keks)
    assert not malformed.ok
    assert "is not JSON" in (malformed.problem or "")
    assert not missing.ok
    assert "missing" in (missing.problem or "")


def test_a_missing_log_is_not_ok(tmp_path: Path) -> None:
    result = verify_audit_log(tmp_path / "nothing.jsonl")
    assert not result.ok
    assert "there is no audit log" in (result.problem or "")


def test_concurrent_appends_from_16_threads_chain_correctly(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, keks=keks)
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
    result = verify_audit_log(path, keks=keks)
    # Assert
    assert failures == []
    assert result.ok, result.problem
    assert result.entries == 160
    assert log.head == (160, result.head_hash)
    records = [json.loads(line) for line in _lines(path)]
    assert sorted(r["actor"] for r in records) == sorted(
        f"key{t * 100 + i:08d}" for t in range(16) for i in range(10)
    )


def test_verification_while_the_service_appends_is_always_ok(
    log_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare: a writer appending without pause (anchor first, then the line)
    done = threading.Event()

    def writer() -> None:
        with AuditLog(log_path, keks=keks) as log:
            for i in range(150):
                _append(log, 1000 + i)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    # Execute: verify over and over while it writes
    verdicts = []
    while not done.is_set():
        verdicts.append(verify_audit_log(log_path, keks=keks))
    thread.join()
    # Assert
    assert verdicts
    assert [v.problem for v in verdicts if not v.ok] == []
    assert verify_audit_log(log_path, keks=keks).entries == ENTRIES + 150


def test_two_logs_on_one_file_interleave_into_one_chain(tmp_path: Path, keks: KeyFileKeks) -> None:
    # e.g. two worker processes of one gateway: each notices the other's appends
    path = tmp_path / "audit.jsonl"
    a, b = AuditLog(path, keks=keks), AuditLog(path, keks=keks)
    for i in range(4):
        _append(a if i % 2 == 0 else b, i)
    assert verify_audit_log(path, keks=keks).entries == 4
    assert verify_audit_log(path, keks=keks).ok


def test_reopening_resumes_the_chain(log_path: Path, keks: KeyFileKeks) -> None:
    # Prepare
    before = verify_audit_log(log_path, keks=keks)
    # Execute
    with AuditLog(log_path, keks=keks) as log:
        resumed = log.head
        record = _append(log, 7)
    # Assert
    assert resumed == (ENTRIES, before.head_hash)
    assert record.seq == ENTRIES + 1
    assert record.prev_hash == before.head_hash
    assert verify_audit_log(log_path, keks=keks).ok


def test_a_record_lost_from_the_log_is_completed_from_the_anchor(
    log_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare: the last line is missing, as after a crash between the anchor and the line
    # (or an attacker deleting it): the anchor holds its MAC'd copy
    lines = _lines(log_path)
    _write(log_path, lines[:-1])
    pending = verify_audit_log(log_path, keks=keks)
    # Execute
    with AuditLog(log_path, keks=keks) as log:
        head = log.head
    # Assert
    assert pending.ok
    assert pending.entries == ENTRIES
    assert "held only in the head anchor" in (pending.note or "")
    assert head[0] == ENTRIES
    assert _lines(log_path) == lines
    completed = verify_audit_log(log_path, keks=keks)
    assert completed.ok
    assert completed.note is None


def test_a_torn_last_line_is_completed_from_the_anchor(log_path: Path, keks: KeyFileKeks) -> None:
    # Prepare: the last record cut short (a power cut during its write)
    lines = _lines(log_path)
    _write(log_path, [*lines[:-1], lines[-1][:40]])
    torn = verify_audit_log(log_path, keks=keks)
    assert torn.ok
    assert "held only in the head anchor" in (torn.note or "")
    # Execute / Assert: the service completes it before appending
    with AuditLog(log_path, keks=keks) as log:
        record = _append(log, 7)
    assert _lines(log_path)[:-1] == lines
    assert record.seq == ENTRIES + 1
    assert verify_audit_log(log_path, keks=keks).ok


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_tamper_edit_detail, "the record was edited"),
        (lambda lines: [*lines, "garbage"], "no line end and is not the anchored record"),
        (_tamper_delete_last_two, "records were removed from its end"),
        (lambda lines: [*lines, "garbage\n"], "not a JSON record"),
    ],
)
def test_reopening_refuses_a_damaged_tail(
    log_path: Path, tamper: Any, message: str, keks: KeyFileKeks
) -> None:
    # Prepare: damage at the end (the edit test edits line 4 of 6, so edit the last)
    lines = _lines(log_path)
    if tamper is _tamper_edit_detail:
        lines[-1] = lines[-1].replace('"doc-5"', '"doc-9"')
    else:
        lines = tamper(lines)
    _write(log_path, lines)
    # Execute / Assert
    with pytest.raises(DataFormatError, match=message) as info:
        AuditLog(log_path, keks=keks)
    assert "verify-audit" in info.value.fix


def test_reopening_refuses_a_malformed_anchor(log_path: Path, keks: KeyFileKeks) -> None:
    anchor_path(log_path).write_text('{"seq": 6}')
    with pytest.raises(DataFormatError, match=r"head anchor .* has no MAC"):
        AuditLog(log_path, keks=keks)


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
    tmp_path: Path, detail: dict[Any, Any], message: str, keks: KeyFileKeks
) -> None:
    # Prepare
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, keks=keks)
    # Execute / Assert
    with pytest.raises(ValueError, match=message):
        log.append(
            actor="k", role="partner", action="query", collection="c", decision="allow",
            detail=detail,
        )  # fmt: skip
    assert path.read_bytes() == b""
    assert log.head == (0, GENESIS_HASH)


def test_the_guard_lets_ids_counts_and_short_lists_through(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    with AuditLog(tmp_path / "audit.jsonl", keks=keks) as log:
        record = log.append(
            actor="k", role="partner", action="query", collection="c", decision="allow",
            detail={"k": 1000, "results": [f"doc-{i}" for i in range(1000)],
                    "scores": [0.5] * 8, "counts": list(range(50)), "reason": "x" * 512},
        )  # fmt: skip
    assert len(record.detail["results"]) == 1000


def test_a_long_top_level_field_is_rejected(tmp_path: Path, keks: KeyFileKeks) -> None:
    with (
        AuditLog(tmp_path / "audit.jsonl", keks=keks) as log,
        pytest.raises(ValueError, match="collection"),
    ):
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
    tmp_path: Path, details: list[dict[str, Any]], keks: KeyFileKeks
) -> None:
    # Prepare
    path = tmp_path / f"audit-{uuid.uuid4().hex}.jsonl"  # a fresh log per example
    # Execute
    with AuditLog(path, keks=keks) as log:
        records = [
            log.append(actor="a", role="node", action="upload", collection="c", decision="allow",
                       detail=d)
            for d in details
        ]  # fmt: skip
    result = verify_audit_log(path, keks=keks)
    # Assert
    assert result.ok, result.problem
    assert result.entries == len(details)
    stored = [json.loads(line)["detail"] for line in _lines(path)]
    assert stored == [r.detail for r in records] == details
