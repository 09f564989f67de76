"""Local training of the query-side adapter on a node's private interactions (DP-SGD).

Shared by the member node (:mod:`client_node.local_round`) and the membership-inference
game (:mod:`attacks.membership_game`), which trains shadow adapters with it. The
epsilon of a DP-SGD run and the noise for a budget come from the node's accountant in
:mod:`privacy` (:func:`privacy.dpsgd_epsilon`, :func:`privacy.noise_multiplier_for`).
The epsilon holds for one privacy unit, all records of one query or person
(:mod:`dp_training.privacy_unit`), not for the node's documents unless their negatives
come from public text (:mod:`dp_training.public_negatives`; docs/privacy_unit.md).
"""

from dp_training.classifier_head import ClassifierHead
from dp_training.distributed_dp import distributed_step_config, noise_share_multiplier
from dp_training.dp_classifier_head import (
    DPClassifierCalibration,
    calibrate_dp_classifier,
)
from dp_training.dp_kmeans import (
    DEFAULT_COUNT_WEIGHT,
    DPKMeansCalibration,
    NoisyCentroids,
    NoisyStatistics,
    assign_corrected,
    calibrate_dp_kmeans,
    kmeans_sensitivity,
    noisy_node_statistics,
    public_initial_centroids,
    update_from_noisy_sums,
)
from dp_training.dp_sgd import PackedRecords, batch_as_is
from dp_training.federated_classifier import federated_classifier
from dp_training.federated_kmeans import FederatedKMeansResult, federated_kmeans
from dp_training.interactions import (
    CorpusSoftmaxLoss,
    InteractionSet,
    TrainingError,
    corpus_softmax_loss,
)
from dp_training.iterate_averaging import (
    AVERAGING_MODES,
    AveragingConfig,
    IterateAverager,
)
from dp_training.kmeans_reseeding import split_fullest
from dp_training.local_training import train_adapter
from dp_training.privacy_unit import (
    UnitSoftmaxLoss,
    clipped_unit_gradient_sum,
    pack_units,
)
from dp_training.public_negatives import document_unit_ids, public_negative_loss
from dp_training.train_config import (
    GRAD_SAMPLE_MODES,
    DPConfig,
    TrainConfig,
    TrainReport,
)

__all__ = [
    "AVERAGING_MODES",
    "DEFAULT_COUNT_WEIGHT",
    "GRAD_SAMPLE_MODES",
    "AveragingConfig",
    "ClassifierHead",
    "CorpusSoftmaxLoss",
    "DPClassifierCalibration",
    "DPConfig",
    "DPKMeansCalibration",
    "FederatedKMeansResult",
    "InteractionSet",
    "IterateAverager",
    "NoisyCentroids",
    "NoisyStatistics",
    "PackedRecords",
    "TrainConfig",
    "TrainReport",
    "TrainingError",
    "UnitSoftmaxLoss",
    "assign_corrected",
    "batch_as_is",
    "calibrate_dp_classifier",
    "calibrate_dp_kmeans",
    "clipped_unit_gradient_sum",
    "corpus_softmax_loss",
    "distributed_step_config",
    "document_unit_ids",
    "federated_classifier",
    "federated_kmeans",
    "kmeans_sensitivity",
    "noise_share_multiplier",
    "noisy_node_statistics",
    "pack_units",
    "public_initial_centroids",
    "public_negative_loss",
    "split_fullest",
    "train_adapter",
    "update_from_noisy_sums",
]
