"""The vocabulary of policy checks: ids, evidence keys, statuses and :class:`PolicyCheck`.

The evidence keys are those of the ``evidence`` dict of the audit results contract; the
check ids appear in the report's ``checks`` and in the regulation mapping.
:data:`EVIDENCE_KEYS` / :data:`AUDIT_CHECK_IDS` are judged in every audit;
:data:`INDEX_EVIDENCE_KEYS` / :data:`INDEX_CHECK_IDS` only when the audit was given an
index data directory (``fedembed audit --index DIR``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

__all__ = [
    "ALL_EVIDENCE_KEYS",
    "AUDIT_CHECK_IDS",
    "AUDIT_LOG_INTACT",
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
    "CHECK_SCORE_RECONSTRUCTION",
    "CHECK_SCORE_RECONSTRUCTION_CONTROL",
    "CHECK_UTILITY",
    "ENCRYPTED_PROTECTIONS",
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
    "EVIDENCE_SCORE_RECONSTRUCTION_CONTROL",
    "EVIDENCE_SCORE_RECONSTRUCTION_COSINE",
    "INDEX_CHECK_IDS",
    "INDEX_EVIDENCE_KEYS",
    "KNOWN_CHECK_IDS",
    "METRIC_PRIVACY_BUDGET_MAX_EPSILON",
    "QUERY_CHECK_IDS",
    "QUERY_EVIDENCE_KEYS",
    "SCORE_RECONSTRUCTION_CONTROL",
    "STATUS_FAIL",
    "STATUS_NOT_EVALUATED",
    "STATUS_PASS",
    "Comparison",
    "PolicyCheck",
    "Status",
]

EVIDENCE_INVERSION_F1_RAW: Final = "inversion_f1_raw"
EVIDENCE_INVERSION_F1_PROTECTED: Final = "inversion_f1_protected"
EVIDENCE_MIA_AUC: Final = "mia_auc"
EVIDENCE_MIA_AUC_OVERFIT_CONTROL: Final = "mia_auc_overfit_control"
EVIDENCE_ATTRIBUTE_ADVANTAGE: Final = "attribute_advantage"
EVIDENCE_BIAS_MAX_ABS_EFFECT_SIZE: Final = "bias_max_abs_effect_size"
EVIDENCE_EPSILON_MAX_NODE: Final = "epsilon_max_node"
EVIDENCE_DELTA_MAX_NODE: Final = "delta_max_node"
EVIDENCE_RETRIEVAL_NDCG10_DROP: Final = "retrieval_ndcg10_drop"
EVIDENCE_KEYS: Final[tuple[str, ...]] = (
    EVIDENCE_INVERSION_F1_RAW,
    EVIDENCE_INVERSION_F1_PROTECTED,
    EVIDENCE_MIA_AUC_OVERFIT_CONTROL,
    EVIDENCE_MIA_AUC,
    EVIDENCE_ATTRIBUTE_ADVANTAGE,
    EVIDENCE_BIAS_MAX_ABS_EFFECT_SIZE,
    EVIDENCE_EPSILON_MAX_NODE,
    EVIDENCE_DELTA_MAX_NODE,
    EVIDENCE_RETRIEVAL_NDCG10_DROP,
)
# Only with an index data directory: fraction of its collection files that are encrypted
# envelopes, and whether its hash-chained audit log verified (AUDIT_LOG_INTACT or 0.0).
EVIDENCE_INDEX_ENCRYPTED_FRACTION: Final = "index_encrypted_fraction"
EVIDENCE_AUDIT_LOG_INTACT: Final = "audit_log_intact"
INDEX_EVIDENCE_KEYS: Final[tuple[str, ...]] = (
    EVIDENCE_INDEX_ENCRYPTED_FRACTION,
    EVIDENCE_AUDIT_LOG_INTACT,
)
# Only when the audit probed a gateway it started with the default partner policy: the
# mean cosine of the strongest score reconstruction over the collection kinds, and the
# same attack against exact scores and vector probes (its control).
EVIDENCE_SCORE_RECONSTRUCTION_COSINE: Final = "score_reconstruction_cosine"
EVIDENCE_SCORE_RECONSTRUCTION_CONTROL: Final = "score_reconstruction_control_cosine"
QUERY_EVIDENCE_KEYS: Final[tuple[str, ...]] = (
    EVIDENCE_SCORE_RECONSTRUCTION_CONTROL,
    EVIDENCE_SCORE_RECONSTRUCTION_COSINE,
)
ALL_EVIDENCE_KEYS: Final[tuple[str, ...]] = (
    *EVIDENCE_KEYS,
    *INDEX_EVIDENCE_KEYS,
    *QUERY_EVIDENCE_KEYS,
)
AUDIT_LOG_INTACT: Final = 1.0
METRIC_PRIVACY_BUDGET_MAX_EPSILON: Final = "privacy_budget_max_epsilon"

CHECK_INVERSION_STRENGTH: Final = "inversion_attack_strength"
CHECK_INVERSION: Final = "inversion"
CHECK_MIA_CONTROL: Final = "membership_inference_control"
CHECK_MIA: Final = "membership_inference"
CHECK_ATTRIBUTE: Final = "attribute_inference"
CHECK_BIAS: Final = "bias"
CHECK_EPSILON: Final = "epsilon"
CHECK_DELTA: Final = "delta"
CHECK_UTILITY: Final = "retrieval_utility"
CHECK_PRIVACY_BUDGET: Final = "privacy_budget"
AUDIT_CHECK_IDS: Final[tuple[str, ...]] = (
    CHECK_INVERSION_STRENGTH,
    CHECK_INVERSION,
    CHECK_MIA_CONTROL,
    CHECK_MIA,
    CHECK_ATTRIBUTE,
    CHECK_BIAS,
    CHECK_EPSILON,
    CHECK_DELTA,
    CHECK_UTILITY,
)
CHECK_ENCRYPTION_AT_REST: Final = "encryption_at_rest"
CHECK_AUDIT_LOG: Final = "audit_log_integrity"
INDEX_CHECK_IDS: Final[tuple[str, ...]] = (CHECK_ENCRYPTION_AT_REST, CHECK_AUDIT_LOG)
CHECK_SCORE_RECONSTRUCTION_CONTROL: Final = "score_reconstruction_control"
CHECK_SCORE_RECONSTRUCTION: Final = "score_reconstruction"
SCORE_RECONSTRUCTION_CONTROL: Final = 0.9  # the exact-score control must reach this cosine
QUERY_CHECK_IDS: Final[tuple[str, ...]] = (
    CHECK_SCORE_RECONSTRUCTION_CONTROL,
    CHECK_SCORE_RECONSTRUCTION,
)
KNOWN_CHECK_IDS: Final[frozenset[str]] = frozenset(
    {*AUDIT_CHECK_IDS, *INDEX_CHECK_IDS, *QUERY_CHECK_IDS, CHECK_PRIVACY_BUDGET}
)

Status = Literal["pass", "fail", "not_evaluated"]
Comparison = Literal["<=", ">="]
STATUS_PASS: Final = "pass"
STATUS_FAIL: Final = "fail"
STATUS_NOT_EVALUATED: Final = "not_evaluated"

# Collection protections that keep plaintext embeddings out of the index (secure_index).
ENCRYPTED_PROTECTIONS: Final[frozenset[str]] = frozenset({"dcpe"})


@dataclass(frozen=True)
class PolicyCheck:
    """One policy check: a measured value compared with a threshold.

    Attributes:
        id: Stable check id (e.g. ``"inversion"``).
        title: Short human title.
        metric: The evidence key (or metric name) the value comes from.
        value: The measured value; ``None`` when that part of the audit was not run.
        comparison: ``"<="`` (value must not exceed) or ``">="`` (must reach) threshold.
        threshold: The policy threshold.
        status: ``"pass"``, ``"fail"`` or ``"not_evaluated"``.
        explanation: Plain English for a compliance officer.
    """

    id: str
    title: str
    metric: str
    value: float | None
    comparison: Comparison
    threshold: float
    status: Status
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the ``checks`` items of the audit results contract)."""
        return asdict(self)
