"""Inversion, membership-inference, attribute and bias audits, and the compliance report."""

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

__all__ = [
    "AttackReport",
    "BiasTest",
    "PermutationTest",
    "Protection",
    "TextSet",
    "WeatResult",
    "association",
    "audit_embeddings",
    "bias_audit",
    "effect_size",
    "holm_bonferroni",
    "load_bias_test",
    "load_bias_tests",
    "permutation_test",
    "resolve_seat_dir",
    "weat",
    "weat_statistic",
]
