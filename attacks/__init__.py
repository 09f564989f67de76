"""Privacy attacks on embeddings, and the protections they run against.

Inversion (nearest-neighbour, bag-of-words, optimisation), attribute inference,
membership inference (the shadow-model game, LiRA), the known-plaintext linear map and
the ciphertext-only distribution alignment, the partner's score reconstruction through
the query endpoint, the WEAT/SEAT bias tests, plus what they
share: :class:`AttackReport`, the ROC and text metrics, the inverters' vocabulary and
the protections (:mod:`attacks.protections`). The audit (``audit``) runs them.

The names below load on first use (PEP 562): the attacks pull in torch, scikit-learn and
transformers, and the ``fedembed`` CLI should not pay for them on every command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from attacks.adaptive_attribute import adaptive_probe, attribute_attacks
    from attacks.attribute_inference import AttributeProbe, attribute_report
    from attacks.base import AttackReport, EmbeddingProtection
    from attacks.bias_audit import audit_embeddings, run_bias_audit
    from attacks.bias_permutation import PermutationTest, permutation_test, smallest_p_value
    from attacks.bias_weat import (
        HolmPower,
        WeatResult,
        association,
        effect_size,
        holm_bonferroni,
        holm_power,
        weat,
        weat_statistic,
    )
    from attacks.bow_inversion import BowConfig, BowInverter
    from attacks.distribution_alignment import AlignmentFit, DistributionAlignmentAttacker
    from attacks.inversion_vocabulary import WordForms, frequent_words, tokenizer_words
    from attacks.known_plaintext_map import LinearMapAttacker
    from attacks.membership_game import (
        MembershipGame,
        dp_trainer,
        game_reports,
        gdp_auc_bound,
        no_signal_control,
        overfit_trainer,
        play_game,
    )
    from attacks.membership_inference import (
        MembershipInferenceError,
        RecordStatistics,
        ShadowSet,
        balanced_membership,
        calibrated_loss_scores,
        half_membership,
        lira_scores,
        no_signal_confidence,
        record_statistics,
        threshold_scores,
        train_models,
        train_shadows,
    )
    from attacks.nearest_neighbour_inversion import NearestNeighbourInverter
    from attacks.optimisation_inversion import OptimisationInverter, SearchConfig
    from attacks.protections import (
        CkksEncryptedSearch,
        DcpeProtection,
        GaussianNoise,
        KeyedRotation,
        RawEmbeddings,
    )
    from attacks.roc import (
        RocCurve,
        RocError,
        fpr_resolution,
        membership_metrics,
        roc_auc,
        roc_curve,
        tpr_at_fpr,
    )
    from attacks.score_reconstruction import (
        ProbePlan,
        Reconstruction,
        ScoreReconstructionAttack,
        reconstruction_report,
        text_probes,
        vector_probes,
    )
    from attacks.seat_tests import (
        BiasTest,
        TextSet,
        collect_bias_tests,
        load_bias_folder,
        load_bias_test,
        load_bias_tests,
        resolve_seat_dir,
    )
    from attacks.text_metrics import Inverter, TextScores, inversion_report, score_texts
    from attacks.word_relevance_map import WordRelevanceMap

_SUBMODULE: dict[str, str] = {
    "AlignmentFit": "distribution_alignment",
    "AttackReport": "base",
    "AttributeProbe": "attribute_inference",
    "BiasTest": "seat_tests",
    "BowConfig": "bow_inversion",
    "BowInverter": "bow_inversion",
    "CkksEncryptedSearch": "protections",
    "DcpeProtection": "protections",
    "DistributionAlignmentAttacker": "distribution_alignment",
    "EmbeddingProtection": "base",
    "GaussianNoise": "protections",
    "HolmPower": "bias_weat",
    "Inverter": "text_metrics",
    "KeyedRotation": "protections",
    "LinearMapAttacker": "known_plaintext_map",
    "MembershipGame": "membership_game",
    "MembershipInferenceError": "membership_inference",
    "NearestNeighbourInverter": "nearest_neighbour_inversion",
    "OptimisationInverter": "optimisation_inversion",
    "PermutationTest": "bias_permutation",
    "ProbePlan": "score_reconstruction",
    "RawEmbeddings": "protections",
    "Reconstruction": "score_reconstruction",
    "RecordStatistics": "membership_inference",
    "RocCurve": "roc",
    "RocError": "roc",
    "ScoreReconstructionAttack": "score_reconstruction",
    "SearchConfig": "optimisation_inversion",
    "ShadowSet": "membership_inference",
    "TextScores": "text_metrics",
    "TextSet": "seat_tests",
    "WeatResult": "bias_weat",
    "WordForms": "inversion_vocabulary",
    "WordRelevanceMap": "word_relevance_map",
    "adaptive_probe": "adaptive_attribute",
    "association": "bias_weat",
    "attribute_attacks": "adaptive_attribute",
    "attribute_report": "attribute_inference",
    "audit_embeddings": "bias_audit",
    "balanced_membership": "membership_inference",
    "calibrated_loss_scores": "membership_inference",
    "collect_bias_tests": "seat_tests",
    "dp_trainer": "membership_game",
    "effect_size": "bias_weat",
    "fpr_resolution": "roc",
    "frequent_words": "inversion_vocabulary",
    "game_reports": "membership_game",
    "gdp_auc_bound": "membership_game",
    "half_membership": "membership_inference",
    "holm_bonferroni": "bias_weat",
    "holm_power": "bias_weat",
    "inversion_report": "text_metrics",
    "lira_scores": "membership_inference",
    "load_bias_folder": "seat_tests",
    "load_bias_test": "seat_tests",
    "load_bias_tests": "seat_tests",
    "membership_metrics": "roc",
    "no_signal_confidence": "membership_inference",
    "no_signal_control": "membership_game",
    "overfit_trainer": "membership_game",
    "permutation_test": "bias_permutation",
    "play_game": "membership_game",
    "reconstruction_report": "score_reconstruction",
    "record_statistics": "membership_inference",
    "resolve_seat_dir": "seat_tests",
    "roc_auc": "roc",
    "roc_curve": "roc",
    "run_bias_audit": "bias_audit",
    "score_texts": "text_metrics",
    "smallest_p_value": "bias_permutation",
    "text_probes": "score_reconstruction",
    "threshold_scores": "membership_inference",
    "tokenizer_words": "inversion_vocabulary",
    "tpr_at_fpr": "roc",
    "train_models": "membership_inference",
    "train_shadows": "membership_inference",
    "vector_probes": "score_reconstruction",
    "weat": "bias_weat",
    "weat_statistic": "bias_weat",
}


__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "AlignmentFit",
    "AttackReport",
    "AttributeProbe",
    "BiasTest",
    "BowConfig",
    "BowInverter",
    "CkksEncryptedSearch",
    "DcpeProtection",
    "DistributionAlignmentAttacker",
    "EmbeddingProtection",
    "GaussianNoise",
    "HolmPower",
    "Inverter",
    "KeyedRotation",
    "LinearMapAttacker",
    "MembershipGame",
    "MembershipInferenceError",
    "NearestNeighbourInverter",
    "OptimisationInverter",
    "PermutationTest",
    "ProbePlan",
    "RawEmbeddings",
    "Reconstruction",
    "RecordStatistics",
    "RocCurve",
    "RocError",
    "ScoreReconstructionAttack",
    "SearchConfig",
    "ShadowSet",
    "TextScores",
    "TextSet",
    "WeatResult",
    "WordForms",
    "WordRelevanceMap",
    "adaptive_probe",
    "association",
    "attribute_attacks",
    "attribute_report",
    "audit_embeddings",
    "balanced_membership",
    "calibrated_loss_scores",
    "collect_bias_tests",
    "dp_trainer",
    "effect_size",
    "fpr_resolution",
    "frequent_words",
    "game_reports",
    "gdp_auc_bound",
    "half_membership",
    "holm_bonferroni",
    "holm_power",
    "inversion_report",
    "lira_scores",
    "load_bias_folder",
    "load_bias_test",
    "load_bias_tests",
    "membership_metrics",
    "no_signal_confidence",
    "no_signal_control",
    "overfit_trainer",
    "permutation_test",
    "play_game",
    "reconstruction_report",
    "record_statistics",
    "resolve_seat_dir",
    "roc_auc",
    "roc_curve",
    "run_bias_audit",
    "score_texts",
    "smallest_p_value",
    "text_probes",
    "threshold_scores",
    "tokenizer_words",
    "tpr_at_fpr",
    "train_models",
    "train_shadows",
    "vector_probes",
    "weat",
    "weat_statistic",
]
