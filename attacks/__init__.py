"""Inversion, membership-inference, attribute and bias audits, and the compliance report."""

from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.audit import AuditConfig, AuditInputs, run_audit
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
from attacks.compliance_report import ReportError, ReportFiles, render_html, write_report
from attacks.index_evidence import IndexDirectoryError, IndexEvidence, index_evidence
from attacks.membership_game import (
    MembershipGame,
    dp_trainer,
    game_reports,
    gdp_auc_bound,
    overfit_trainer,
    play_game,
)
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
from attacks.optimisation_inversion import OptimisationInverter, SearchConfig, tokenizer_words
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
    "AuditConfig",
    "AuditInputs",
    "BiasTest",
    "BowConfig",
    "BowInverter",
    "DcpeProtection",
    "GaussianNoise",
    "IndexDirectoryError",
    "IndexEvidence",
    "Inverter",
    "LinearMapAttacker",
    "MembershipGame",
    "MembershipInferenceError",
    "NearestNeighbourInverter",
    "OptimisationInverter",
    "PermutationTest",
    "Protection",
    "RawEmbeddings",
    "RecordStatistics",
    "ReportError",
    "ReportFiles",
    "RocCurve",
    "RocError",
    "SearchConfig",
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
    "dp_trainer",
    "effect_size",
    "fpr_resolution",
    "game_reports",
    "gdp_auc_bound",
    "holm_bonferroni",
    "index_evidence",
    "inversion_report",
    "lira_leave_one_out",
    "lira_scores",
    "load_bias_test",
    "load_bias_tests",
    "membership_metrics",
    "overfit_trainer",
    "permutation_test",
    "play_game",
    "record_statistics",
    "render_html",
    "resolve_seat_dir",
    "roc_auc",
    "roc_curve",
    "run_audit",
    "score_texts",
    "threshold_scores",
    "tokenizer_words",
    "tpr_at_fpr",
    "train_shadows",
    "weat",
    "weat_statistic",
    "write_report",
]
