"""The audit results' sections: JSON-safe values, attack rows, the ledger, the digest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from attacks.base import AttackReport
from audit.config import AuditConfig
from audit.protection_cases import DeployedProtection
from audit.results import (
    adapter_sha256,
    audit_limitations,
    json_safe,
    privacy_budget,
    report_dict,
)
from embedding_core.adapter import Adapter

LEDGER = {"node-b": 8.0, "node-a": 7.95}


def _adapter(folder: Path) -> Path:
    Adapter(8, side="query", seed=0).save(
        folder,
        base_model_id="test-model",
        base_model_fingerprint="0" * 64,
        metadata={
            "target_delta": 1e-5,
            "rounds": 3,
            "per_node_epsilon": LEDGER,
            "refusals": [{"node": "node-b", "reason": "budget"}],
        },
    )
    return folder


def test_json_safe_turns_numpy_and_non_finite_numbers_into_json() -> None:
    # Prepare
    value = {1: (np.float32(0.5), np.int64(3)), "bad": [float("nan"), float("inf")]}
    # Execute
    safe = json_safe(value)
    # Assert
    assert safe == {"1": [0.5, 3], "bad": [None, None]}
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe


def test_report_rows_leave_out_roc_curves_but_keep_other_details() -> None:
    # Prepare
    report = AttackReport(
        attack="membership_game",
        target="dp adapter",
        threat_model="shadow models",
        metrics={"auc": 0.52},
        seconds=1.5,
        details={"roc_fpr": [0.0, 1.0], "roc_tpr": [0.0, 1.0], "models": 4},
    )
    # Execute
    row = report_dict(report)
    # Assert
    assert row["details"] == {"models": 4}
    assert row["metrics"] == {"auc": 0.52}
    assert report.details["roc_fpr"] == [0.0, 1.0]  # the report itself is unchanged


def test_privacy_budget_lists_each_node_sorted_with_its_refusal(tmp_path: Path) -> None:
    # Prepare
    adapter = Adapter.load(_adapter(tmp_path / "adapter"))
    # Execute
    rows = privacy_budget(adapter)
    # Assert
    assert [r["node"] for r in rows] == ["node-a", "node-b"]
    assert rows[0] == {
        "node": "node-a",
        "epsilon": 7.95,
        "delta": 1e-5,
        "rounds": 3,
        "refused": False,
    }
    assert rows[1]["refused"] is True
    assert privacy_budget(None) == []


def test_adapter_digest_changes_with_any_file_of_the_folder(tmp_path: Path) -> None:
    # Prepare
    folder = _adapter(tmp_path / "adapter")
    before = adapter_sha256(folder)
    # Execute
    (folder / "notes.txt").write_text("added", encoding="utf-8")
    after = adapter_sha256(folder)
    # Assert
    assert before is not None
    assert len(before) == 64
    assert after != before
    assert adapter_sha256(None) is None


def test_limitations_say_what_was_not_given() -> None:
    # Execute
    bare = audit_limitations(AuditConfig.quick(), False, DeployedProtection())
    # Assert
    assert any("No adapter was given" in note for note in bare)
    assert any("encryption at rest only" in note for note in bare)
    assert not any("sized to this machine" in note for note in bare)


def test_limitations_say_which_checks_were_sized_to_the_machine() -> None:
    notes = audit_limitations(AuditConfig.quick(ckks_seconds=30.0), False, DeployedProtection())
    sized = [note for note in notes if "sized to this machine (30 s)" in note]
    assert len(sized) == 1
    assert "ndcg10_claims" in sized[0]
