"""Distributed DP: one node's round is one linear, noisy, clipped full-batch gradient step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dp_training import (
    DPConfig,
    InteractionSet,
    TrainConfig,
    TrainingError,
    corpus_softmax_loss,
    distributed_step_config,
    noise_share_multiplier,
    train_adapter,
)
from embedding_core.adapter import Adapter, AdapterSide

DIM, RECORDS, DOCS, CLIP, TEMPERATURE = 64, 40, 30, 0.5, 0.05


def _records() -> InteractionSet:
    rng = np.random.default_rng(0)
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return InteractionSet(
        query_vectors=unit(rng.normal(size=(RECORDS, DIM))),
        positive_index=rng.integers(0, DOCS, RECORDS).astype(np.int64),
        doc_vectors=unit(rng.normal(size=(DOCS, DIM))),
    )


def _flat(adapter: Adapter) -> np.ndarray:
    return np.concatenate([p.detach().numpy().ravel() for p in adapter.parameters()])


def _clipped_mean_gradient(records: InteractionSet) -> np.ndarray:
    """The oracle: sum over records of each record's gradient clipped to CLIP, over n."""
    adapter = Adapter(DIM, side=AdapterSide.QUERY, seed=0)
    total = np.zeros_like(_flat(adapter))
    for i in range(RECORDS):
        adapter.zero_grad()
        loss = corpus_softmax_loss(
            adapter,
            torch.from_numpy(records.query_vectors[i : i + 1]),
            torch.from_numpy(records.positive_index[i : i + 1]),
            torch.from_numpy(records.doc_vectors),
            temperature=TEMPERATURE,
            reduction="sum",
        )
        loss.backward()  # type: ignore[no-untyped-call]
        grad = np.concatenate([p.grad.numpy().ravel() for p in adapter.parameters()])
        total += grad * min(1.0, CLIP / np.linalg.norm(grad))
    return total / RECORDS


def _one_step(records: InteractionSet, noise: float) -> np.ndarray:
    adapter = Adapter(DIM, side=AdapterSide.QUERY, seed=0)
    before = _flat(adapter)
    config = distributed_step_config(TrainConfig(temperature=TEMPERATURE), len(records))
    dp = DPConfig(noise_multiplier=noise, max_grad_norm=CLIP, delta=1e-5, noise_seed=7)
    report = train_adapter(adapter, records, config, dp=dp)
    assert (report.steps, report.sample_rate) == (1, 1.0)
    return _flat(adapter) - before


def test_the_update_is_minus_the_clipped_mean_gradient() -> None:
    # Prepare
    records = _records()
    # Execute: (almost) no noise, so the update is the deterministic part.
    update = _one_step(records, noise=1e-6)
    # Assert: linear in the clipped per-record gradients, as the secure sum needs.
    np.testing.assert_allclose(update, -_clipped_mean_gradient(records), atol=1e-5)


def test_the_noise_share_has_the_calibrated_standard_deviation() -> None:
    # Prepare: a share of 2.0 of the noise multiplier.
    records = _records()
    share = noise_share_multiplier(2.0 * np.sqrt(3), 3)
    # Execute
    residual = _one_step(records, noise=share) + _clipped_mean_gradient(records)
    # Assert: every coordinate carries N(0, (share * clip / n)^2); 4,160 coordinates.
    assert share == pytest.approx(2.0)
    assert residual.std() == pytest.approx(share * CLIP / RECORDS, rel=0.05)
    assert abs(residual.mean()) < 4 * share * CLIP / RECORDS / np.sqrt(residual.size)


def test_shares_divide_the_noise_by_their_square_root() -> None:
    assert noise_share_multiplier(6.0, 4) == pytest.approx(3.0)
    assert noise_share_multiplier(6.0, 0) == 6.0  # local DP: all of it
    with pytest.raises(TrainingError, match="shares"):
        noise_share_multiplier(6.0, -1)
    with pytest.raises(TrainingError, match="noise multiplier"):
        noise_share_multiplier(0.0, 3)


def test_the_step_config_is_one_full_batch_sgd_step() -> None:
    config = distributed_step_config(TrainConfig(epochs=20, batch_size=64, weight_decay=0.1), 300)
    assert (config.epochs, config.batch_size, config.optimizer) == (1, 300, "sgd")
    assert (config.learning_rate, config.weight_decay) == (1.0, 0.0)
    with pytest.raises(TrainingError, match="records"):
        distributed_step_config(TrainConfig(), 0)
