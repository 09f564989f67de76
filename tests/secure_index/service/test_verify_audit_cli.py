"""``fedembed index verify-audit`` against someone who can write the service's files but
holds no KEK: a cut tail with a rewritten anchor, an emptied log and a deleted anchor all
exit 1 with what is wrong and how to restore; a rollback to copies needs the head the
auditor kept (``--expected-head``); without the KEK the command refuses to vouch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_anchor import AnchorKey, anchor_path, encode_anchor
from secure_index.service.audit_log import AuditLog
from secure_index.service.settings import audit_path


def _verify(data: Path, *args: str) -> tuple[int, dict[str, object], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDEMBED_INDEX_")}
    result = subprocess.run(
        [sys.executable, "-m", "fedembed", "index", "verify-audit", "--data-dir", str(data), *args],
        capture_output=True, text=True, check=False, env=env | {"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    payload = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, payload, result.stderr


@pytest.fixture
def data(tmp_path: Path) -> Path:
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    with AuditLog(audit_path(tmp_path / "svc"), keks=keks) as log:
        for i in range(5):
            log.append(
                actor=f"key-{i}", role="partner", action="query", collection="claims",
                decision="allow", detail={"k": 10, "results": [f"doc-{i}"]},
            )  # fmt: skip
    return tmp_path / "svc"


def _kek(data: Path) -> str:
    return str(data.parent / "kek.json")


def test_an_intact_log_verifies_with_the_kek_and_prints_the_head(data: Path) -> None:
    code, verdict, _ = _verify(data, "--key-file", _kek(data))
    assert code == 0
    assert verdict["ok"] is True
    assert verdict["entries"] == 5
    assert verdict["anchor_authenticated"] is True


def test_without_the_kek_it_refuses_to_vouch(data: Path) -> None:
    code, _, stderr = _verify(data)
    assert code == 2
    assert "FEDEMBED_INDEX_KEK" in stderr
    assert "Traceback" not in stderr


def test_a_cut_tail_with_a_rewritten_anchor_exits_1(data: Path) -> None:
    # Prepare: keep 3 of 5 records and write an anchor for them under the attacker's key
    log = audit_path(data)
    lines = log.read_text().splitlines(keepends=True)[:3]
    log.write_text("".join(lines))
    last = json.loads(lines[-1])
    attacker = AnchorKey.create(KeyFileKeks.create(data.parent / "attacker.json"))
    anchor_path(log).write_bytes(encode_anchor(attacker, 3, last["hash"], last))
    # Execute
    code, verdict, _ = _verify(data, "--key-file", _kek(data))
    # Assert
    assert code == 1
    assert verdict["ok"] is False
    assert "does not unwrap" in str(verdict["problem"])
    assert "restore the log and its .head anchor together from a backup" in str(verdict["problem"])


@pytest.mark.parametrize("remove_anchor", [False, True], ids=["emptied", "emptied-no-anchor"])
def test_an_emptied_log_exits_1(data: Path, remove_anchor: bool) -> None:
    audit_path(data).write_bytes(b"")
    if remove_anchor:
        anchor_path(audit_path(data)).unlink()
    code, verdict, _ = _verify(data, "--key-file", _kek(data))
    assert code == 1
    expected = "head anchor" if remove_anchor else "records were removed from its end"
    assert expected in str(verdict["problem"])


def test_a_rollback_is_caught_with_the_expected_head(data: Path) -> None:
    # Prepare: copies taken now, two more records, the auditor keeps the head, copies back
    log = audit_path(data)
    old_log, old_anchor = log.read_bytes(), anchor_path(log).read_bytes()
    with AuditLog(log, keks=KeyFileKeks.load(Path(_kek(data)))) as live:
        for _ in range(2):
            live.append(
                actor="k", role="node", action="upload", collection="claims",
                decision="allow", detail={"items": 1},
            )  # fmt: skip
    _, kept, _ = _verify(data, "--key-file", _kek(data))
    log.write_bytes(old_log)
    anchor_path(log).write_bytes(old_anchor)
    # Execute
    code, verdict, _ = _verify(
        data, "--key-file", _kek(data), "--expected-head", str(kept["head_hash"])
    )
    # Assert
    assert code == 1
    assert "the head hash you recorded is not in the log" in str(verdict["problem"])
