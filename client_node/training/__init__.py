"""Local training of the query-side adapter on a node's private interactions (DP-SGD)."""

from client_node.training.interactions import (
    CorpusSoftmaxLoss,
    InteractionSet,
    TrainingError,
    corpus_softmax_loss,
)
from client_node.training.local_training import (
    GRAD_SAMPLE_MODES,
    DPConfig,
    TrainConfig,
    TrainReport,
    epsilon_for,
    noise_for_budget,
    train_adapter,
)

__all__ = [
    "GRAD_SAMPLE_MODES",
    "CorpusSoftmaxLoss",
    "DPConfig",
    "InteractionSet",
    "TrainConfig",
    "TrainReport",
    "TrainingError",
    "corpus_softmax_loss",
    "epsilon_for",
    "noise_for_budget",
    "train_adapter",
]
