"""Inversion, membership-inference, attribute and bias audits, and the compliance report."""

from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.base import AttackReport, Protection
from attacks.bias_audit import (
    BiasTest,
    TextSet,
    audit_embeddings,
    bias_audit,
    load_bias_test,
    load_bias_tests,
    resolve_seat_dir,
)
from attacks.bias_weat import (
    PermutationTest,
    WeatResult,
    association,
    effect_size,
    holm_bonferroni,
    permutation_test,
    weat,
    weat_statistic,
)
from attacks.bow_inversion import BowConfig, BowInverter
from attacks.membership_inference import (
    MembershipInferenceError,
    RecordStatistics,
    ShadowSet,
    balanced_membership,
    calibrated_loss_scores,
    lira_leave_one_out,
    lira_scores,
    record_statistics,
    threshold_scores,
    train_shadows,
)
from attacks.nearest_neighbour_inversion import NearestNeighbourInverter
from attacks.protections import DcpeProtection, GaussianNoise, LinearMapAttacker, RawEmbeddings
from attacks.roc import (
    RocCurve,
    RocError,
    fpr_resolution,
    membership_metrics,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)
from attacks.text_metrics import Inverter, TextScores, inversion_report, score_texts

__all__ = [
    "AttackReport",
    "AttributeProbe",
    "BiasTest",
    "BowConfig",
    "BowInverter",
    "DcpeProtection",
    "GaussianNoise",
    "Inverter",
    "LinearMapAttacker",
    "MembershipInferenceError",
    "NearestNeighbourInverter",
    "PermutationTest",
    "Protection",
    "RawEmbeddings",
    "RecordStatistics",
    "RocCurve",
    "RocError",
    "ShadowSet",
    "TextScores",
    "TextSet",
    "WeatResult",
    "association",
    "attribute_report",
    "audit_embeddings",
    "balanced_membership",
    "bias_audit",
    "calibrated_loss_scores",
    "effect_size",
    "fpr_resolution",
    "holm_bonferroni",
    "inversion_report",
    "lira_leave_one_out",
    "lira_scores",
    "load_bias_test",
    "load_bias_tests",
    "membership_metrics",
    "permutation_test",
    "record_statistics",
    "resolve_seat_dir",
    "roc_auc",
    "roc_curve",
    "score_texts",
    "threshold_scores",
    "tpr_at_fpr",
    "train_shadows",
    "weat",
    "weat_statistic",
]
