"""The regulation mapping: shipped entries and status aggregation."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import (
    DISCLAIMER,
    EVIDENCE_KEYS,
    KNOWN_CHECK_IDS,
    Policy,
    PolicyError,
    evaluate_audit,
    load_regulations,
    map_regulations,
)
from policies.regulations import regulation_status

PASSING_EVIDENCE = {
    "inversion_f1_raw": 0.6,
    "inversion_f1_protected": 0.05,
    "mia_auc": 0.51,
    "mia_auc_overfit_control": 0.9,
    "attribute_advantage": 0.02,
    "bias_max_abs_effect_size": 0.3,
    "epsilon_max_node": 4.0,
    "delta_max_node": 1e-6,
    "retrieval_ndcg10_drop": 1.0,
}


def test_shipped_mapping_covers_the_required_provisions() -> None:
    entries = load_regulations()

    provisions = {(e.framework, e.article) for e in entries}
    assert {
        ("GDPR", "Art. 25"), ("GDPR", "Art. 32"), ("GDPR", "Art. 35"),
        ("EU AI Act", "Art. 10"), ("EU AI Act", "Art. 15"),
    } <= provisions  # fmt: skip
    hipaa = sorted(a for f, a in provisions if f == "HIPAA")
    assert hipaa == [f"45 CFR 164.312({s})" for s in "abcde"]
    assert all(set(e.checks) <= KNOWN_CHECK_IDS for e in entries)
    assert "10(2)(f)" in next(e.title for e in entries if e.article == "Art. 10")
    assert "bias" in next(e.checks for e in entries if e.article == "Art. 10")


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["pass", "pass"], "pass"),
        (["pass", "fail"], "fail"),
        (["not_evaluated", "fail"], "fail"),
        (["pass", "not_evaluated"], "partial"),
        (["not_evaluated", "not_evaluated"], "not_evaluated"),
        ([], "not_evaluated"),
    ],
)
def test_status_aggregation(statuses: list[str], expected: str) -> None:
    ids = [f"check-{n}" for n in range(len(statuses))]

    assert regulation_status(ids, dict(zip(ids, statuses, strict=True))) == expected


def test_check_absent_from_the_results_counts_as_not_evaluated() -> None:
    assert regulation_status(["inversion", "bias"], {"inversion": "pass"}) == "partial"


def test_all_passing_audit_passes_every_measured_provision(default_policy: Policy) -> None:
    # Prepare
    checks = evaluate_audit(default_policy, PASSING_EVIDENCE)
    # Execute
    rows = map_regulations(checks)
    # Assert
    by_article = {row["article"]: row for row in rows}
    assert by_article["Art. 25"]["status"] == "pass"
    assert by_article["Art. 10"]["status"] == "pass"
    assert by_article["45 CFR 164.312(b)"]["status"] == "not_evaluated"
    assert set(rows[0]) == {
        "framework", "article", "title", "requirement", "how_addressed", "checks", "status",
    }  # fmt: skip


def test_missing_bias_evidence_makes_dpia_partial_and_art10_not_evaluated(
    default_policy: Policy,
) -> None:
    evidence = {**PASSING_EVIDENCE, "bias_max_abs_effect_size": None}

    by_article = {
        r["article"]: r for r in map_regulations(evaluate_audit(default_policy, evidence))
    }

    assert by_article["Art. 35"]["status"] == "partial"
    assert by_article["Art. 10"]["status"] == "not_evaluated"
    assert by_article["Art. 25"]["status"] == "pass"


def test_one_failed_check_fails_its_provisions(default_policy: Policy) -> None:
    evidence = {**PASSING_EVIDENCE, "epsilon_max_node": 9.0}

    rows = map_regulations(evaluate_audit(default_policy, evidence))

    failed = {r["article"] for r in rows if r["status"] == "fail"}
    assert failed == {r["article"] for r in rows if "epsilon" in r["checks"]}
    assert "Art. 25" in failed
    assert set(PASSING_EVIDENCE) == set(EVIDENCE_KEYS)


def test_mapping_naming_an_unknown_check_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "regs.toml"
    path.write_text(
        '[[regulation]]\nframework = "X"\narticle = "1"\ntitle = "t"\nrequirement = "r"\n'
        'how_addressed = "h"\nchecks = ["inversionn"]\n',
        encoding="utf-8",
    )

    with pytest.raises(PolicyError, match="inversionn"):
        load_regulations(path)


def test_disclaimer_says_not_legal_advice() -> None:
    assert "not legal advice" in DISCLAIMER
