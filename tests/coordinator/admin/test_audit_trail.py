"""The admin audit trail: every tampering is detected and named, the head anchor is keyed.

Each attack edits the files as someone with write access to the home folder but without
the trail key would (Schneier & Kelsey 1999): edit, delete, reorder, truncate, append a
correctly chained record behind the anchor, or replace the anchor with one of their own.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import shutil
from pathlib import Path

import pytest

from coordinator.admin.audit_trail import AdminAuditTrail
from coordinator.admin.tokens import AdminRole, AdminToken
from coordinator.admin.trail_anchor import load_trail_key
from coordinator.admin.trail_records import GENESIS_HASH, TRAIL_FILE, TrailError
from coordinator.admin.trail_verification import verify_trail

ACTOR = AdminToken("0123456789ab", "ops-alice", AdminRole.ADMIN, "2026-01-01T00:00:00+00:00")
RECORDS = 5


def _trail(tmp_path: Path, records: int = RECORDS) -> tuple[Path, bytes]:
    """A trail of ``records`` token issues, closed, with its key."""
    key = load_trail_key(tmp_path, None, create=True)
    trail = AdminAuditTrail(tmp_path / TRAIL_FILE, key=key)
    for n in range(records):
        trail.record(ACTOR, "token.create", f"{n:012x}", detail={"role": "auditor", "n": n})
    trail.close()
    return tmp_path / TRAIL_FILE, key


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _rechained(fields: dict[str, object]) -> bytes:
    """A record with its hash recomputed (what an attacker without the key can do)."""
    body = {k: v for k, v in fields.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    fields = {**body, "hash": hashlib.sha256(canonical.encode()).hexdigest()}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def test_records_chain_resume_and_verify(tmp_path: Path) -> None:
    # Prepare
    path, key = _trail(tmp_path)
    # Execute: reopen (a restart) and go on
    trail = AdminAuditTrail(path, key=key)
    trail.record(ACTOR, "token.revoke", "000000000001")
    result = trail.verify()
    trail.close()
    # Assert
    records = [json.loads(line) for line in _lines(path)]
    assert [r["seq"] for r in records] == list(range(1, RECORDS + 2))
    assert records[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(records))
    assert records[-1]["actor"] == ACTOR.token_id
    assert records[-1]["role"] == "admin"
    assert result.ok
    assert result.entries == RECORDS + 1
    assert result.head_hash == records[-1]["hash"]


def test_the_service_and_the_cli_append_to_one_chain(tmp_path: Path) -> None:
    key = load_trail_key(tmp_path, None, create=True)
    service = AdminAuditTrail(tmp_path / TRAIL_FILE, key=key)
    cli = AdminAuditTrail(tmp_path / TRAIL_FILE, key=key)

    for n in range(3):
        service.record(ACTOR, "a.b", f"s{n}")
        cli.record(ACTOR, "a.b", f"c{n}")

    result = service.verify()
    assert result.ok
    assert (result.entries, result.head_hash) == cli.head == (6, cli.head[1])
    service.close()
    cli.close()


def test_an_edited_record_is_named(tmp_path: Path) -> None:
    path, key = _trail(tmp_path)
    lines = _lines(path)
    lines[2] = lines[2].replace(b'"auditor"', b'"admin"')
    path.write_bytes(b"".join(lines))

    result = verify_trail(path, key)

    assert not result.ok
    assert result.line == 3
    assert "edited" in (result.problem or "")
    assert result.entries == 2
    with pytest.raises(TrailError, match="line 3"):
        AdminAuditTrail(path, key=key)


def test_an_edited_and_rehashed_record_breaks_the_next_link(tmp_path: Path) -> None:
    path, key = _trail(tmp_path)
    lines = _lines(path)
    fields = json.loads(lines[1])
    fields["target"] = "ffffffffffff"
    lines[1] = _rechained(fields)
    path.write_bytes(b"".join(lines))

    result = verify_trail(path, key)

    assert not result.ok
    assert result.line == 3
    assert "prev_hash" in (result.problem or "")


@pytest.mark.parametrize(
    ("attack", "line"),
    [
        (lambda lines: lines[:1] + lines[2:], 2),  # a record deleted
        (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 2),  # two swapped
    ],
    ids=["deleted", "reordered"],
)
def test_a_deleted_or_reordered_record_is_named(tmp_path: Path, attack: object, line: int) -> None:
    path, key = _trail(tmp_path)
    path.write_bytes(b"".join(attack(_lines(path))))  # type: ignore[operator]

    result = verify_trail(path, key)

    assert not result.ok
    assert result.line == line
    assert "seq" in (result.problem or "")


def test_a_truncated_trail_is_detected(tmp_path: Path) -> None:
    path, key = _trail(tmp_path)
    path.write_bytes(b"".join(_lines(path)[:-2]))

    result = verify_trail(path, key)

    assert not result.ok
    assert "removed from its end" in (result.problem or "")
    with pytest.raises(TrailError, match="removed from its end"):
        AdminAuditTrail(path, key=key)


def test_the_last_record_lost_from_the_log_is_restored_from_the_anchor(tmp_path: Path) -> None:
    # Prepare: the log lost its last line (a crash between anchor and line, or a cut)
    path, key = _trail(tmp_path)
    lines = _lines(path)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])  # a torn last line
    # Execute
    before = verify_trail(path, key)
    AdminAuditTrail(path, key=key).close()
    # Assert: no record the trail acknowledged is lost
    assert before.ok
    assert before.entries == RECORDS
    assert "only in the head anchor" in str(before.note)
    assert _lines(path) == lines
    assert verify_trail(path, key).note is None


def test_a_record_appended_behind_the_anchor_is_detected(tmp_path: Path) -> None:
    path, key = _trail(tmp_path)
    last = json.loads(_lines(path)[-1])
    forged = {**last, "seq": RECORDS + 1, "prev_hash": last["hash"], "target": "attacker"}
    with path.open("ab") as handle:
        handle.write(_rechained(forged))

    result = verify_trail(path, key)

    assert not result.ok
    assert result.line == RECORDS + 1
    assert "follow the head anchor" in (result.problem or "")
    with pytest.raises(TrailError):
        AdminAuditTrail(path, key=key)


def test_an_anchor_rewritten_without_the_key_is_refused(tmp_path: Path) -> None:
    # Prepare: cut two records and write a trail + anchor of their own under another key
    path, key = _trail(tmp_path)
    lines = _lines(path)
    forger = tmp_path / "forger"
    forger.mkdir()
    fake_path, _ = _trail(forger, RECORDS - 2)
    shutil.copy(fake_path.with_name(fake_path.name + ".head"), path.with_name(path.name + ".head"))
    path.write_bytes(b"".join(lines[:-2]))
    # Execute
    result = verify_trail(path, key)
    # Assert
    assert not result.ok
    assert "MAC does not verify" in (result.problem or "")
    assert not verify_trail(path, load_trail_key(forger, None, create=False)).ok


def test_a_removed_anchor_is_detected(tmp_path: Path) -> None:
    path, key = _trail(tmp_path)
    path.with_name(path.name + ".head").unlink()

    assert "anchor" in (verify_trail(path, key).problem or "")
    with pytest.raises(TrailError, match="anchor is missing"):
        AdminAuditTrail(path, key=key)


def test_a_rollback_is_caught_only_by_a_head_recorded_off_the_host(tmp_path: Path) -> None:
    # Prepare: copies of the trail and its anchor, then more records, then the copies back
    path, key = _trail(tmp_path, 2)
    anchor = path.with_name(path.name + ".head")
    old_log, old_anchor = path.read_bytes(), anchor.read_bytes()
    trail = AdminAuditTrail(path, key=key)
    trail.record(ACTOR, "token.revoke", "000000000000")
    recorded = trail.verify().head_hash
    trail.close()
    path.write_bytes(old_log)
    anchor.write_bytes(old_anchor)
    # Execute
    plain, checked = verify_trail(path, key), verify_trail(path, key, expected_head=recorded)
    # Assert
    assert plain.ok
    assert not checked.ok
    assert "not in the trail" in (checked.problem or "")
    assert verify_trail(path, key, expected_head=plain.head_hash).ok


def test_texts_and_vectors_are_never_recorded(tmp_path: Path) -> None:
    trail = AdminAuditTrail(tmp_path / TRAIL_FILE, key=secrets.token_bytes(32))

    with pytest.raises(ValueError, match="text"):
        trail.record(ACTOR, "x.y", "t", detail={"query": "a patient record " * 40})
    with pytest.raises(ValueError, match="numbers"):
        trail.record(ACTOR, "x.y", "t", detail={"v": [0.1] * 16})
    trail.record(ACTOR, "x.y", "t", detail={"ids": list(range(20)), "name": "node-a"})

    assert trail.head[0] == 1
    trail.close()


def test_the_key_comes_from_its_file_or_a_long_enough_variable(tmp_path: Path) -> None:
    path, key = _trail(tmp_path)
    assert load_trail_key(tmp_path, None, create=False) == key
    assert load_trail_key(tmp_path, "k" * 40, create=False) != key

    with pytest.raises(TrailError, match="FEDEMBED_ADMIN_TRAIL_KEY"):
        load_trail_key(tmp_path, "short", create=False)
    with pytest.raises(TrailError, match="no audit trail key"):
        load_trail_key(tmp_path / "elsewhere", None, create=False)
    (tmp_path / "trail.key").chmod(0o644)
    with pytest.raises(TrailError, match="chmod 600"):
        load_trail_key(tmp_path, None, create=False)
    with pytest.raises(TrailError, match="MAC"):
        AdminAuditTrail(path, key=secrets.token_bytes(32))
