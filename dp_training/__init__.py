"""Local training of the query-side adapter on a node's private interactions (DP-SGD)."""

from dp_training.distributed_dp import distributed_step_config, noise_share_multiplier
from dp_training.dp_sgd import epsilon_for, noise_for_budget
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
from dp_training.local_training import train_adapter
from dp_training.train_config import (
    GRAD_SAMPLE_MODES,
    DPConfig,
    TrainConfig,
    TrainReport,
)

__all__ = [
    "AVERAGING_MODES",
    "GRAD_SAMPLE_MODES",
    "AveragingConfig",
    "CorpusSoftmaxLoss",
    "DPConfig",
    "InteractionSet",
    "IterateAverager",
    "TrainConfig",
    "TrainReport",
    "TrainingError",
    "corpus_softmax_loss",
    "distributed_step_config",
    "epsilon_for",
    "noise_for_budget",
    "noise_share_multiplier",
    "train_adapter",
]
