"""Declarative privacy, access and audit policies, validated and evaluated in one place.

A policy is a TOML file (see ``consortium_default.toml``) loaded by :func:`load_policy`
into a validated :class:`Policy`. :func:`evaluate_audit` compares audit evidence with
its thresholds, :func:`check_partner_grant` and :func:`check_privacy_budget` check
access grants and the privacy ledger, and :func:`map_regulations` maps the outcome to
GDPR, EU AI Act and HIPAA provisions.
"""

from policies.checks import (
    ALL_EVIDENCE_KEYS,
    AUDIT_CHECK_IDS,
    CHECK_ATTRIBUTE,
    CHECK_AUDIT_LOG,
    CHECK_BIAS,
    CHECK_DELTA,
    CHECK_ENCRYPTION_AT_REST,
    CHECK_EPSILON,
    CHECK_INVERSION,
    CHECK_INVERSION_STRENGTH,
    CHECK_MIA,
    CHECK_MIA_CONTROL,
    CHECK_PRIVACY_BUDGET,
    CHECK_UTILITY,
    EVIDENCE_ATTRIBUTE_ADVANTAGE,
    EVIDENCE_AUDIT_LOG_INTACT,
    EVIDENCE_BIAS_MAX_ABS_EFFECT_SIZE,
    EVIDENCE_DELTA_MAX_NODE,
    EVIDENCE_EPSILON_MAX_NODE,
    EVIDENCE_INDEX_ENCRYPTED_FRACTION,
    EVIDENCE_INVERSION_F1_PROTECTED,
    EVIDENCE_INVERSION_F1_RAW,
    EVIDENCE_KEYS,
    EVIDENCE_MIA_AUC,
    EVIDENCE_MIA_AUC_OVERFIT_CONTROL,
    EVIDENCE_RETRIEVAL_NDCG10_DROP,
    INDEX_CHECK_IDS,
    INDEX_EVIDENCE_KEYS,
    KNOWN_CHECK_IDS,
    PolicyCheck,
)
from policies.errors import PolicyError
from policies.evaluation import check_partner_grant, check_privacy_budget, evaluate_audit
from policies.loader import LoadedPolicy, default_policy_path, load_default_policy, load_policy
from policies.model import (
    OBSERVERS,
    AccessPolicy,
    AuditThresholds,
    Policy,
    PolicyMeta,
    PrivacyPolicy,
)
from policies.privacy_plan import ObserverBound, PrivacyPlan, plan_privacy
from policies.regulations import (
    DISCLAIMER,
    RegulationEntry,
    load_regulations,
    map_regulations,
)

__all__ = [
    "ALL_EVIDENCE_KEYS",
    "AUDIT_CHECK_IDS",
    "CHECK_ATTRIBUTE",
    "CHECK_AUDIT_LOG",
    "CHECK_BIAS",
    "CHECK_DELTA",
    "CHECK_ENCRYPTION_AT_REST",
    "CHECK_EPSILON",
    "CHECK_INVERSION",
    "CHECK_INVERSION_STRENGTH",
    "CHECK_MIA",
    "CHECK_MIA_CONTROL",
    "CHECK_PRIVACY_BUDGET",
    "CHECK_UTILITY",
    "DISCLAIMER",
    "EVIDENCE_ATTRIBUTE_ADVANTAGE",
    "EVIDENCE_AUDIT_LOG_INTACT",
    "EVIDENCE_BIAS_MAX_ABS_EFFECT_SIZE",
    "EVIDENCE_DELTA_MAX_NODE",
    "EVIDENCE_EPSILON_MAX_NODE",
    "EVIDENCE_INDEX_ENCRYPTED_FRACTION",
    "EVIDENCE_INVERSION_F1_PROTECTED",
    "EVIDENCE_INVERSION_F1_RAW",
    "EVIDENCE_KEYS",
    "EVIDENCE_MIA_AUC",
    "EVIDENCE_MIA_AUC_OVERFIT_CONTROL",
    "EVIDENCE_RETRIEVAL_NDCG10_DROP",
    "INDEX_CHECK_IDS",
    "INDEX_EVIDENCE_KEYS",
    "KNOWN_CHECK_IDS",
    "OBSERVERS",
    "AccessPolicy",
    "AuditThresholds",
    "LoadedPolicy",
    "ObserverBound",
    "Policy",
    "PolicyCheck",
    "PolicyError",
    "PolicyMeta",
    "PrivacyPlan",
    "PrivacyPolicy",
    "RegulationEntry",
    "check_partner_grant",
    "check_privacy_budget",
    "default_policy_path",
    "evaluate_audit",
    "load_default_policy",
    "load_policy",
    "load_regulations",
    "map_regulations",
    "plan_privacy",
]
