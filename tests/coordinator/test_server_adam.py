"""Adam on the coordinator (FedAdam): the same step as torch.optim.Adam, applied to FedAvg."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from coordinator.server_adam import ServerAdam
from tests.coordinator.grid import start_round
from tests.coordinator.replies import train_reply

LR = 0.003


def _reply(w: np.ndarray, node: int) -> Message:
    content = RecordDict(
        {"arrays": ArrayRecord({"w": Array(w)}), "metrics": MetricRecord({"num-examples": 10})}
    )
    return train_reply(content, node)


def test_steps_match_torch_adam_on_the_same_gradients() -> None:
    # Prepare: five pseudo-gradients, and torch's Adam (the peer implementation) on a copy.
    rng = np.random.default_rng(0)
    gradients = [rng.normal(size=7) for _ in range(5)]
    ours = ServerAdam(FedAvg(), learning_rate=LR, beta_1=0.9, beta_2=0.99, tau=1e-6)
    weights = torch.zeros(7, dtype=torch.float64, requires_grad=True)
    reference = torch.optim.Adam([weights], lr=LR, betas=(0.9, 0.99), eps=1e-6)
    position = np.zeros(7)
    for gradient in gradients:
        # Execute
        position = position + ours.step(gradient)
        weights.grad = torch.from_numpy(gradient)
        reference.step()
        # Assert
        np.testing.assert_allclose(position, weights.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_wraps_fedavg_and_steps_along_the_mean_update() -> None:
    # Prepare: the round starts at zero; two nodes' updates average to +0.5 and -2.
    strategy = ServerAdam(FedAvg(min_train_nodes=1, min_available_nodes=1), learning_rate=LR)
    start_round(strategy, 1, ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))}), [1, 2])
    replies = [
        _reply(np.array([1.0, -4.0], dtype=np.float32), 1),
        _reply(np.array([0.0, 0.0], dtype=np.float32), 2),
    ]

    # Execute
    arrays, _ = strategy.aggregate_train(1, replies)

    # Assert: Adam's first step moves each weight by lr in the update's direction.
    assert arrays is not None
    np.testing.assert_allclose(arrays["w"].numpy(), [LR, -LR], rtol=1e-5)
    assert strategy.steps == 1


def test_no_aggregate_means_no_step() -> None:
    strategy = ServerAdam(FedAvg(min_train_nodes=1, min_available_nodes=1), learning_rate=LR)
    start_round(strategy, 1, ArrayRecord({"w": Array(np.zeros(2, dtype=np.float32))}), [1, 2])

    arrays, _ = strategy.aggregate_train(1, [])

    assert arrays is None
    assert strategy.steps == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": LR, "beta_1": 1.0}, "beta_1"),
        ({"learning_rate": LR, "beta_2": -0.1}, "beta_2"),
        ({"learning_rate": LR, "tau": 0.0}, "tau"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerAdam(FedAvg(), **kwargs)
