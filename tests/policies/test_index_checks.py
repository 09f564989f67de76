"""The index checks (encryption at rest, audit-log integrity) and their regulations."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policies import (
    AUDIT_CHECK_IDS,
    CHECK_AUDIT_LOG,
    CHECK_ENCRYPTION_AT_REST,
    EVIDENCE_AUDIT_LOG_INTACT,
    EVIDENCE_INDEX_ENCRYPTED_FRACTION,
    INDEX_CHECK_IDS,
    INDEX_EVIDENCE_KEYS,
    KNOWN_CHECK_IDS,
    Policy,
    PolicyCheck,
    PolicyError,
    evaluate_audit,
    load_policy,
    load_regulations,
    map_regulations,
)

PASSING_EVIDENCE: dict[str, float | None] = {
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
INTACT_INDEX: dict[str, float | None] = {
    EVIDENCE_INDEX_ENCRYPTED_FRACTION: 1.0,
    EVIDENCE_AUDIT_LOG_INTACT: 1.0,
}
WritePolicy = Callable[..., Path]
HIPAA_AUDIT, HIPAA_INTEGRITY = "45 CFR 164.312(b)", "45 CFR 164.312(c)"


def _by_id(checks: list[PolicyCheck]) -> dict[str, PolicyCheck]:
    return {check.id: check for check in checks}


def _with(policy: Policy, table: str, key: str, value: Any) -> Policy:
    data = policy.model_dump()
    data[table][key] = value
    return Policy.model_validate(data)


def test_index_checks_are_left_out_when_no_index_was_audited(default_policy: Policy) -> None:
    checks = evaluate_audit(default_policy, PASSING_EVIDENCE)

    assert [c.id for c in checks] == list(AUDIT_CHECK_IDS)
    assert set(INDEX_CHECK_IDS) <= KNOWN_CHECK_IDS
    assert not set(INDEX_CHECK_IDS) & set(AUDIT_CHECK_IDS)


def test_index_checks_follow_the_audit_checks_and_pass_on_an_intact_index(
    default_policy: Policy,
) -> None:
    checks = evaluate_audit(default_policy, {**PASSING_EVIDENCE, **INTACT_INDEX})

    assert [c.id for c in checks] == [*AUDIT_CHECK_IDS, *INDEX_CHECK_IDS]
    assert [c.metric for c in checks[-2:]] == list(INDEX_EVIDENCE_KEYS)
    encryption, audit_log = checks[-2:]
    assert (encryption.status, encryption.comparison, encryption.threshold) == ("pass", ">=", 1.0)
    assert (audit_log.status, audit_log.comparison, audit_log.threshold) == ("pass", ">=", 1.0)
    assert "100% of the index's collection files" in encryption.explanation
    assert "audit log is intact" in audit_log.explanation


def test_index_evidence_none_is_not_evaluated(default_policy: Policy) -> None:
    evidence = {EVIDENCE_INDEX_ENCRYPTED_FRACTION: None, EVIDENCE_AUDIT_LOG_INTACT: None}

    by_id = _by_id(evaluate_audit(default_policy, evidence))

    for check_id in INDEX_CHECK_IDS:
        assert by_id[check_id].status == "not_evaluated"
        assert by_id[check_id].value is None
        assert by_id[check_id].explanation.startswith("Not evaluated")


@pytest.mark.parametrize(
    ("fraction", "status", "shown"),
    [(1.0, "pass", "100%"), (0.9995, "fail", "99.9%"), (0.5, "fail", "50%"), (0.0, "fail", "0%")],
)
def test_any_unencrypted_file_fails_the_default_policy(
    default_policy: Policy, fraction: float, status: str, shown: str
) -> None:
    check = _by_id(evaluate_audit(default_policy, {EVIDENCE_INDEX_ENCRYPTED_FRACTION: fraction}))[
        CHECK_ENCRYPTION_AT_REST
    ]

    assert check.status == status
    assert check.explanation.startswith(f"{shown} of the index's")  # never rounded up to 100%


def test_encryption_threshold_comes_from_the_policy(default_policy: Policy) -> None:
    relaxed = _with(default_policy, "audit", "min_index_encrypted_fraction", 0.9)

    at = _by_id(evaluate_audit(relaxed, {EVIDENCE_INDEX_ENCRYPTED_FRACTION: 0.9}))
    below = _by_id(evaluate_audit(relaxed, {EVIDENCE_INDEX_ENCRYPTED_FRACTION: 0.89}))

    assert at[CHECK_ENCRYPTION_AT_REST].status == "pass"
    assert at[CHECK_ENCRYPTION_AT_REST].threshold == 0.9
    assert below[CHECK_ENCRYPTION_AT_REST].status == "fail"


def test_a_broken_audit_log_fails(default_policy: Policy) -> None:
    check = _by_id(evaluate_audit(default_policy, {EVIDENCE_AUDIT_LOG_INTACT: 0.0}))[
        CHECK_AUDIT_LOG
    ]

    assert (check.status, check.value) == ("fail", 0.0)
    assert "audit log is broken" in check.explanation
    assert ". Fail: " in check.explanation


def test_audit_log_check_does_not_apply_when_the_policy_requires_no_log(
    default_policy: Policy,
) -> None:
    relaxed = _with(default_policy, "access", "audit_log_required", False)

    check = _by_id(evaluate_audit(relaxed, {EVIDENCE_AUDIT_LOG_INTACT: 0.0}))[CHECK_AUDIT_LOG]

    assert (check.status, check.value) == ("not_evaluated", 0.0)
    assert "access.audit_log_required = false" in check.explanation


@pytest.mark.parametrize("value", [math.nan, True, "1.0"])
def test_bad_index_evidence_is_refused(default_policy: Policy, value: object) -> None:
    with pytest.raises(PolicyError, match="audit_log_intact"):
        evaluate_audit(default_policy, {EVIDENCE_AUDIT_LOG_INTACT: value})  # type: ignore[dict-item]


def test_unknown_evidence_key_error_lists_the_index_keys(default_policy: Policy) -> None:
    with pytest.raises(PolicyError) as info:
        evaluate_audit(default_policy, {"index_encrypted": 1.0})

    assert EVIDENCE_INDEX_ENCRYPTED_FRACTION in str(info.value)
    assert EVIDENCE_AUDIT_LOG_INTACT in str(info.value)


def test_regulations_map_hipaa_audit_and_integrity_and_gdpr_32_to_the_index_checks() -> None:
    entries = {(e.framework, e.article): e.checks for e in load_regulations()}

    assert entries[("HIPAA", HIPAA_AUDIT)] == (CHECK_AUDIT_LOG,)
    assert entries[("HIPAA", HIPAA_INTEGRITY)] == (CHECK_ENCRYPTION_AT_REST,)
    assert CHECK_ENCRYPTION_AT_REST in entries[("GDPR", "Art. 32")]
    assert "inversion" in entries[("GDPR", "Art. 32")]  # the existing mapping is kept


@pytest.mark.parametrize(
    ("index", "audit", "integrity", "art32"),
    [
        ({}, "not_evaluated", "not_evaluated", "partial"),
        (INTACT_INDEX, "pass", "pass", "pass"),
        ({EVIDENCE_INDEX_ENCRYPTED_FRACTION: 0.5, EVIDENCE_AUDIT_LOG_INTACT: 1.0},
         "pass", "fail", "fail"),
        ({EVIDENCE_INDEX_ENCRYPTED_FRACTION: 1.0, EVIDENCE_AUDIT_LOG_INTACT: 0.0},
         "fail", "pass", "pass"),
    ],
)  # fmt: skip
def test_index_checks_decide_the_hipaa_and_gdpr_32_status(
    default_policy: Policy, index: dict[str, float], audit: str, integrity: str, art32: str
) -> None:
    checks = evaluate_audit(default_policy, {**PASSING_EVIDENCE, **index})

    by_article = {row["article"]: row["status"] for row in map_regulations(checks)}

    assert (by_article[HIPAA_AUDIT], by_article[HIPAA_INTEGRITY]) == (audit, integrity)
    assert by_article["Art. 32"] == art32


def test_policy_without_the_encryption_threshold_defaults_to_every_file(
    write_policy: WritePolicy,
) -> None:
    path = write_policy(("min_index_encrypted_fraction = 1.0", ""))

    policy = load_policy(path).policy

    assert policy.audit.min_index_encrypted_fraction == 1.0


def test_an_encryption_threshold_above_one_is_refused(write_policy: WritePolicy) -> None:
    path = write_policy(
        ("min_index_encrypted_fraction = 1.0", "min_index_encrypted_fraction = 1.5")
    )

    with pytest.raises(PolicyError) as info:
        load_policy(path)

    assert "audit.min_index_encrypted_fraction" in str(info.value)
