"""The main job's federation recipe, its epsilon columns and the members' budget.

Every row of the comparison table (``fedembed demo``) trains with :class:`Recipe`. The
default table shows one epsilon column (:data:`QUICK_EPSILONS`: every row kind at epsilon
8, plus the release at the epsilon the policy plans); ``--full-sweep`` shows
:data:`EPSILONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedding_core.encoder import DEFAULT_ENCODER_BACKEND

__all__ = [
    "DELTA",
    "EPSILONS",
    "NODES",
    "QUICK_EPSILONS",
    "RELEASE_TAG",
    "Recipe",
    "member_budget",
]

EPSILONS = (1.0, 2.0, 4.0, 8.0)
"""The full sweep's epsilon columns (``fedembed demo --full-sweep``)."""
QUICK_EPSILONS = (8.0,)
"""The default table's epsilon column."""
NODES = ("node-0", "node-1", "node-2")
RELEASE_TAG = "release"
DELTA = 1e-5


def member_budget(epsilons: tuple[float, ...], release_epsilon: float) -> float:
    """The budget each member's operator declares for every DP row of the demo together.

    The release, the federated rows, the distributed-DP rows and the local-only DP row all
    train the same records; composition never exceeds the sum of their epsilons.
    """
    return release_epsilon + 2 * sum(epsilons) + max(epsilons)


@dataclass(frozen=True)
class Recipe:
    """Training recipe shared by every row of the comparison.

    Non-DP rows use minibatch Adam. DP rows use full-batch DP-SGD (Poisson sampling
    rate 1: with ~300 records per node, the largest batch gives the best signal to
    noise), Adam 3e-3 and clip norm 1.0, the best recipe found in
    ``benchmarks/centralised_adapter.py`` and the in-process sweep recorded in
    benchmarks/RESULTS.md. The distributed-DP row (``noise_shares`` > 0) takes one noisy
    full-batch gradient step per node and round, ``distributed_rounds`` rounds, with Adam
    on the coordinator (``dp_training/distributed_dp.py``).
    """

    rounds: int = 5
    local_epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 1e-3
    dp_local_epochs: int = 20
    dp_batch_size: int = 4096
    dp_learning_rate: float = 3e-3
    temperature: float = 0.05
    max_grad_norm: float = 1.0
    adapter_kind: str = "residual_linear"
    adapter_rank: int = 0
    distributed_rounds: int = 100
    noise_shares: int = 3
    server_learning_rate: float = 3e-3
    encoder_backend: str = DEFAULT_ENCODER_BACKEND  # every node's and the evaluation's

    def run_config(self, *, dp: bool, epsilon: float, data_dir: Path, tag: str) -> dict[str, Any]:
        """Flower run config for one federation."""
        return {
            "num-server-rounds": self.rounds,
            "aggregation": "ckks",
            "adapter-kind": self.adapter_kind,
            "adapter-rank": self.adapter_rank,
            "local-epochs": self.dp_local_epochs if dp else self.local_epochs,
            "batch-size": self.dp_batch_size if dp else self.batch_size,
            "learning-rate": self.dp_learning_rate if dp else self.learning_rate,
            "temperature": self.temperature,
            "dp-enabled": dp,
            "target-epsilon": epsilon,
            "target-delta": DELTA,
            "max-grad-norm": self.max_grad_norm,
            "min-nodes": len(NODES),
            "eval-dataset": "scifact",
            "data-dir": str(data_dir),
            "run-tag": tag,
            "encoder-backend": self.encoder_backend,
        }

    def distributed_run_config(self, *, epsilon: float, data_dir: Path, tag: str) -> dict[str, Any]:
        """Flower run config for the distributed-DP federation."""
        return {
            **self.run_config(dp=True, epsilon=epsilon, data_dir=data_dir, tag=tag),
            "num-server-rounds": self.distributed_rounds,
            "local-epochs": 1,
            "learning-rate": 1.0,
            "dp-noise-shares": self.noise_shares,
            "server-learning-rate": self.server_learning_rate,
        }
