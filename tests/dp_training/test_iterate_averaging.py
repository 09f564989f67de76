from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dp_training import (
    AveragingConfig,
    DPConfig,
    InteractionSet,
    IterateAverager,
    TrainConfig,
    TrainingError,
    TrainReport,
    train_adapter,
)
from embedding_core import Adapter
from privacy import PrivacyLedger

DIM = 16
DOCS = 80
RECORDS = 40


def _task(seed: int = 0) -> InteractionSet:
    rng = np.random.default_rng(seed)
    docs = rng.normal(size=(DOCS, DIM))
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    positives = rng.integers(0, DOCS, size=RECORDS)
    queries = docs[positives][:, ::-1] + 0.1 * rng.normal(size=(RECORDS, DIM))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return InteractionSet(
        query_vectors=np.ascontiguousarray(queries, dtype=np.float32),
        positive_index=positives.astype(np.int64),
        doc_vectors=docs.astype(np.float32),
    )


def _state(adapter: Adapter) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in adapter.state_dict().items()}


def _feed(values: list[float], config: AveragingConfig) -> IterateAverager:
    """Run an averager over a scalar parameter that takes ``values`` in turn."""
    param = nn.Parameter(torch.zeros((), dtype=torch.float64))
    averager = IterateAverager([param], config, total_steps=len(values))
    for value in values:
        with torch.no_grad():
            param.fill_(value)
        averager.update()
    return averager


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "swa"}, "mode"),
        ({"tail_fraction": 0.0}, "tail_fraction"),
        ({"tail_fraction": 1.5}, "tail_fraction"),
        ({"tail_fraction": math.nan}, "tail_fraction"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"ema_decay": -0.1}, "ema_decay"),
        ({"ema_decay": True}, "ema_decay"),
    ],
)
def test_averaging_config_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        AveragingConfig(**kwargs)  # type: ignore[arg-type]


def test_train_config_rejects_a_non_config_averaging() -> None:
    with pytest.raises(TrainingError, match="averaging"):
        TrainConfig(averaging="ema")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fraction", "steps", "start"),
    [(0.5, 20, 11), (1.0, 20, 1), (0.01, 20, 20), (0.3, 10, 8), (0.5, 1, 1)],
)
def test_tail_start_step(fraction: float, steps: int, start: int) -> None:
    assert AveragingConfig(mode="tail", tail_fraction=fraction).start_step(steps) == start


# --- the averages ----------------------------------------------------------------------


def test_golden_averages() -> None:
    # Prepare / Execute
    ema = _feed([1.0, 2.0, 3.0], AveragingConfig(mode="ema", ema_decay=0.5)).averaged()
    tail = _feed([1.0, 2.0, 3.0], AveragingConfig(mode="tail", tail_fraction=2 / 3)).averaged()
    none = _feed([1.0, 2.0, 3.0], AveragingConfig(mode="none")).averaged()
    # Assert: ema 1 -> 1.5 -> 2.25; tail mean of (2, 3); none keeps the last iterate.
    assert ema is not None
    assert float(ema[0]) == 2.25
    assert tail is not None
    assert float(tail[0]) == 2.5
    assert none is None


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=30),
    fraction=st.floats(0.01, 1.0),
    decay=st.floats(0.0, 0.99),
)
def test_averages_match_a_reference(values: list[float], fraction: float, decay: float) -> None:
    # Prepare: an independent float64 reference of both averages.
    start = AveragingConfig(mode="tail", tail_fraction=fraction).start_step(len(values))
    tail_reference = float(np.mean(values[start - 1 :]))
    ema_reference = values[0]
    for value in values[1:]:
        ema_reference = decay * ema_reference + (1 - decay) * value
    # Execute
    tail = _feed(values, AveragingConfig(mode="tail", tail_fraction=fraction)).averaged()
    ema = _feed(values, AveragingConfig(mode="ema", ema_decay=decay)).averaged()
    # Assert
    assert tail is not None
    assert ema is not None
    assert math.isclose(float(tail[0]), tail_reference, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(float(ema[0]), ema_reference, rel_tol=1e-9, abs_tol=1e-9)


def test_apply_overwrites_the_parameters() -> None:
    param = nn.Parameter(torch.zeros(3))
    averager = IterateAverager(
        [param], AveragingConfig(mode="tail", tail_fraction=1.0), total_steps=2
    )
    assert not averager.apply()
    for value in (1.0, 3.0):
        with torch.no_grad():
            param.fill_(value)
        averager.update()
    assert averager.apply()
    torch.testing.assert_close(param.detach(), torch.full((3,), 2.0))


# --- in training: averaging is post-processing ------------------------------------------


def _train_recording(
    averaging: AveragingConfig, *, dp: DPConfig | None, epochs: int = 6
) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor], TrainReport]:
    """Full-batch training (one step per epoch), recording the iterate after each step."""
    adapter = Adapter(DIM, side="query")
    iterates: list[dict[str, torch.Tensor]] = []
    report = train_adapter(
        adapter,
        _task(),
        TrainConfig(epochs=epochs, batch_size=RECORDS, learning_rate=0.05, averaging=averaging),
        dp=dp,
        on_epoch=lambda _epoch, _loss: iterates.append(_state(adapter)),
    )
    return iterates, _state(adapter), report


def _mean(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in states]).mean(dim=0) for k in states[0]}


@pytest.mark.parametrize("private", [True, False])
def test_tail_average_is_the_mean_of_the_iterates(private: bool) -> None:
    # Prepare
    dp = DPConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5, noise_seed=11)
    averaging = AveragingConfig(mode="tail", tail_fraction=0.5)
    # Execute
    iterates, final, report = _train_recording(averaging, dp=dp if private else None)
    # Assert: six iterates, the last three averaged.
    assert report.steps == len(iterates) == 6
    for key, value in _mean(iterates[3:]).items():
        torch.testing.assert_close(final[key], value, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(final[k], iterates[-1][k]) for k in final)


def test_ema_in_dp_training_matches_the_recursion() -> None:
    dp = DPConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5, noise_seed=5)
    iterates, final, _ = _train_recording(AveragingConfig(mode="ema", ema_decay=0.7), dp=dp)
    expected = iterates[0]
    for state in iterates[1:]:
        expected = {k: 0.7 * expected[k] + 0.3 * state[k] for k in expected}
    for key, value in expected.items():
        torch.testing.assert_close(final[key], value, rtol=1e-5, atol=1e-6)


def test_averaging_charges_the_same_epsilon(tmp_path: Path) -> None:
    # Prepare: the same seeded DP run with and without averaging.
    dp = DPConfig(noise_multiplier=1.2, max_grad_norm=1.0, delta=1e-5, noise_seed=3)
    last_iterates, last_final, last_report = _train_recording(AveragingConfig(), dp=dp)
    avg_iterates, avg_final, avg_report = _train_recording(
        AveragingConfig(mode="tail", tail_fraction=1.0), dp=dp
    )
    # Execute: charge each report to a fresh ledger, as run_local_round does.
    spent = []
    for name, report in (("last", last_report), ("avg", avg_report)):
        ledger = PrivacyLedger.open(
            tmp_path / f"{name}.json", node_id="node-0", max_epsilon=100.0, delta=1e-5
        )
        spent.append(
            ledger.charge(
                noise_multiplier=dp.noise_multiplier,
                sample_rate=report.sample_rate,
                steps=report.steps,
                run_id="run",
                round=1,
            )
        )
    # Assert: the released iterates are the same, only their post-processing differs.
    for a, b in zip(last_iterates, avg_iterates, strict=True):
        for key in a:
            torch.testing.assert_close(a[key], b[key])
    for key in last_final:
        torch.testing.assert_close(last_final[key], last_iterates[-1][key])
    assert any(not torch.equal(avg_final[k], last_final[k]) for k in avg_final)
    assert avg_report.epsilon == last_report.epsilon
    assert last_report.epsilon is not None
    assert last_report.epsilon > 0
    assert (avg_report.steps, avg_report.sample_rate) == (
        last_report.steps,
        last_report.sample_rate,
    )
    assert spent[0] == spent[1] > 0
