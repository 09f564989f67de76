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
from attacks.nearest_neighbour_inversion import NearestNeighbourInverter
from attacks.protections import DcpeProtection, GaussianNoise, LinearMapAttacker, RawEmbeddings
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
    "NearestNeighbourInverter",
    "PermutationTest",
    "Protection",
    "RawEmbeddings",
    "TextScores",
    "TextSet",
    "WeatResult",
    "association",
    "attribute_report",
    "audit_embeddings",
    "bias_audit",
    "effect_size",
    "holm_bonferroni",
    "inversion_report",
    "load_bias_test",
    "load_bias_tests",
    "permutation_test",
    "resolve_seat_dir",
    "score_texts",
    "weat",
    "weat_statistic",
]
