"""Audit evidence, partner grants and the privacy ledger checked against a policy."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import (
    AUDIT_CHECK_IDS,
    CHECK_ATTRIBUTE,
    CHECK_INVERSION,
    CHECK_INVERSION_STRENGTH,
    CHECK_MIA,
    CHECK_MIA_CONTROL,
    CHECK_PRIVACY_BUDGET,
    EVIDENCE_ATTRIBUTE_ADVANTAGE,
    EVIDENCE_INVERSION_F1_PROTECTED,
    EVIDENCE_INVERSION_F1_RAW,
    EVIDENCE_KEYS,
    EVIDENCE_MIA_AUC,
    EVIDENCE_MIA_AUC_OVERFIT_CONTROL,
    Policy,
    PolicyCheck,
    PolicyError,
    check_partner_grant,
    check_privacy_budget,
    evaluate_audit,
    load_default_policy,
)

CONTRACT_EVIDENCE: dict[str, float | None] = {
    "inversion_f1_raw": 0.58,
    "inversion_f1_protected": 0.12,
    "mia_auc": 0.55,
    "mia_auc_overfit_control": 0.95,
    "attribute_advantage": 0.3,
    "bias_max_abs_effect_size": 1.5,
    "epsilon_max_node": 8.0,
    "delta_max_node": 1e-5,
    "retrieval_ndcg10_drop": 0.5,
}


def _by_id(checks: list[PolicyCheck]) -> dict[str, PolicyCheck]:
    return {check.id: check for check in checks}


def test_contract_example_evidence_gives_one_check_per_evidence_key(
    default_policy: Policy,
) -> None:
    # Execute
    checks = evaluate_audit(default_policy, CONTRACT_EVIDENCE)
    # Assert
    assert [c.id for c in checks] == list(AUDIT_CHECK_IDS)
    assert sorted(c.metric for c in checks) == sorted(EVIDENCE_KEYS) == sorted(CONTRACT_EVIDENCE)
    by_id = _by_id(checks)
    inversion = by_id[CHECK_INVERSION]
    assert (inversion.status, inversion.comparison, inversion.threshold) == ("fail", "<=", 0.1)
    assert "recovered 12% of content words" in inversion.explanation
    assert "allows at most 10%" in inversion.explanation
    assert inversion.explanation.startswith("The strongest")
    assert by_id[CHECK_MIA].status == "pass"  # 0.55 equals the threshold
    assert by_id[CHECK_ATTRIBUTE].status == "fail"
    assert by_id["bias"].status == "fail"
    assert by_id["epsilon"].status == "pass"
    assert by_id["retrieval_utility"].status == "pass"


def test_to_dict_is_json_serialisable_with_contract_fields(default_policy: Policy) -> None:
    check = evaluate_audit(default_policy, CONTRACT_EVIDENCE)[1]

    payload = json.loads(json.dumps(check.to_dict()))

    assert set(payload) == {
        "id", "title", "metric", "value", "comparison", "threshold", "status", "explanation",
    }  # fmt: skip
    assert payload["id"] == CHECK_INVERSION
    assert payload["value"] == 0.12


def test_missing_evidence_is_not_evaluated(default_policy: Policy) -> None:
    checks = evaluate_audit(default_policy, {EVIDENCE_MIA_AUC: None})

    assert {c.status for c in checks} == {"not_evaluated"}
    assert all(c.value is None and c.explanation.startswith("Not evaluated") for c in checks)


def _strong_controls(**evidence: float | None) -> dict[str, float | None]:
    return {EVIDENCE_INVERSION_F1_RAW: 0.9, EVIDENCE_MIA_AUC_OVERFIT_CONTROL: 0.99, **evidence}


@pytest.mark.parametrize("metric", EVIDENCE_KEYS)
def test_value_equal_to_threshold_passes_and_just_beyond_fails(
    default_policy: Policy, metric: str
) -> None:
    # Prepare: find the threshold and direction of the check on this metric
    probe = _by_id(evaluate_audit(default_policy, _strong_controls()))
    check = next(c for c in probe.values() if c.metric == metric)
    step = max(abs(check.threshold) * 1e-6, 1e-12)
    beyond = check.threshold + step if check.comparison == "<=" else check.threshold - step
    # Execute
    at = _by_id(evaluate_audit(default_policy, _strong_controls(**{metric: check.threshold})))
    out = _by_id(evaluate_audit(default_policy, _strong_controls(**{metric: beyond})))
    # Assert
    assert at[check.id].status == "pass"
    assert out[check.id].status == "fail"
    assert ". Fail: " in out[check.id].explanation
    assert ". Pass: " in at[check.id].explanation


@pytest.mark.parametrize(
    ("raw", "protected", "strength", "inversion"),
    [
        (0.9, 0.05, "pass", "pass"),
        (0.3, 0.05, "fail", "not_evaluated"),  # too weak to mean anything
        (None, 0.05, "not_evaluated", "not_evaluated"),  # strength never measured
        (0.3, 0.2, "fail", "fail"),  # leak found even by a weak attack: conclusive
    ],
)
def test_inversion_pass_needs_a_strong_enough_attack(
    default_policy: Policy, raw: float | None, protected: float, strength: str, inversion: str
) -> None:
    evidence = {EVIDENCE_INVERSION_F1_RAW: raw, EVIDENCE_INVERSION_F1_PROTECTED: protected}

    by_id = _by_id(evaluate_audit(default_policy, evidence))

    assert by_id[CHECK_INVERSION_STRENGTH].status == strength
    assert by_id[CHECK_INVERSION].status == inversion
    if inversion == "not_evaluated":
        assert "Inconclusive" in by_id[CHECK_INVERSION].explanation
        assert CHECK_INVERSION_STRENGTH in by_id[CHECK_INVERSION].explanation


def test_membership_pass_needs_the_overfit_control_to_work(default_policy: Policy) -> None:
    evidence = {EVIDENCE_MIA_AUC: 0.5, EVIDENCE_MIA_AUC_OVERFIT_CONTROL: 0.52}

    by_id = _by_id(evaluate_audit(default_policy, evidence))

    assert by_id[CHECK_MIA_CONTROL].status == "fail"
    assert by_id[CHECK_MIA].status == "not_evaluated"


@pytest.mark.parametrize(
    "evidence",
    [{"inversion_f1": 0.1}, {EVIDENCE_MIA_AUC: math.nan}, {EVIDENCE_MIA_AUC: True}],
)
def test_bad_evidence_is_refused(default_policy: Policy, evidence: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        evaluate_audit(default_policy, evidence)


def _with_attribute_threshold(policy: Policy, threshold: float) -> Policy:
    data = policy.model_dump()
    data["audit"]["max_attribute_advantage"] = threshold
    return Policy.model_validate(data)


@given(
    value=st.floats(min_value=0.0, max_value=1.0),
    threshold=st.floats(min_value=0.0, max_value=1.0),
)
def test_property_upper_bound_check_passes_iff_value_within_threshold(
    value: float, threshold: float
) -> None:
    # Prepare
    policy = _with_attribute_threshold(load_default_policy().policy, threshold)
    # Execute
    check = _by_id(evaluate_audit(policy, {EVIDENCE_ATTRIBUTE_ADVANTAGE: value}))[CHECK_ATTRIBUTE]
    # Assert
    assert check.status == ("pass" if value <= threshold else "fail")
    assert (check.value, check.threshold) == (value, threshold)


def test_partner_grant_within_policy_has_no_violation(default_policy: Policy) -> None:
    violations = check_partner_grant(
        default_policy,
        top_k_cap=100,
        requests_per_minute=600,
        collections_protection={"docs": "dcpe"},
    )

    assert violations == []


def test_partner_grant_violations_name_the_policy_key(default_policy: Policy) -> None:
    violations = check_partner_grant(
        default_policy,
        top_k_cap=101,
        requests_per_minute=601,
        collections_protection={"docs": "dcpe", "raw": "at-rest"},
    )

    assert len(violations) == 3
    assert "access.max_top_k" in violations[0]
    assert "access.max_requests_per_minute" in violations[1]
    assert "'raw'" in violations[2]
    assert "require_encrypted_collections_for_partners" in violations[2]


def test_unencrypted_collection_allowed_when_policy_does_not_require_encryption(
    default_policy: Policy,
) -> None:
    data = default_policy.model_dump()
    data["access"]["require_encrypted_collections_for_partners"] = False
    relaxed = Policy.model_validate(data)

    violations = check_partner_grant(
        relaxed, top_k_cap=0, requests_per_minute=10, collections_protection={"raw": "at-rest"}
    )

    assert violations == ["top-k cap 0 is outside 1..100 (access.max_top_k)"]


def test_privacy_budget_within_and_over_the_per_node_cap(default_policy: Policy) -> None:
    within = [
        {"node": "node-1", "epsilon": 7.9, "delta": 1e-5, "rounds": 5, "refused": False},
        {"node": "node-2", "epsilon": 8.0, "delta": 1e-6, "rounds": 5, "refused": True},
    ]
    over = [*within, {"node": "node-3", "epsilon": 9.5, "delta": 1e-5, "rounds": 6}]

    ok = check_privacy_budget(default_policy, within)
    bad = check_privacy_budget(default_policy, over)
    empty = check_privacy_budget(default_policy, [])

    assert (ok.id, ok.status, ok.value, ok.threshold) == (CHECK_PRIVACY_BUDGET, "pass", 8.0, 8.0)
    assert (bad.status, bad.value) == ("fail", 9.5)
    assert "node-3" in bad.explanation
    assert "node-1" not in bad.explanation
    assert (empty.status, empty.value) == ("not_evaluated", None)


def test_privacy_budget_delta_above_target_fails(default_policy: Policy) -> None:
    check = check_privacy_budget(default_policy, [{"node": "n", "epsilon": 1.0, "delta": 1e-3}])

    assert check.status == "fail"


def test_privacy_budget_entry_without_epsilon_is_refused(default_policy: Policy) -> None:
    with pytest.raises(PolicyError, match="lacks"):
        check_privacy_budget(default_policy, [{"node": "n", "delta": 1e-5}])
