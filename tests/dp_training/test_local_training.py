from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils.data import DataLoader, TensorDataset

from dp_training import (
    CorpusSoftmaxLoss,
    DPConfig,
    InteractionSet,
    TrainConfig,
    TrainingError,
    train_adapter,
)
from embedding_core import Adapter
from privacy import ACCOUNTANT, noise_multiplier_for
from privacy.analysis import epsilon_for_mu, steps_mu

DIM = 24
DOCS = 150
TEMPERATURE = 0.05


def _rotated_task(records: int, seed: int = 0, noise: float = 0.05) -> InteractionSet:
    """Queries are noisy copies of their documents rotated by one fixed random map."""
    rng = np.random.default_rng(seed)
    docs = rng.normal(size=(DOCS, DIM))
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    rotation, _ = np.linalg.qr(np.random.default_rng(99).normal(size=(DIM, DIM)))
    positives = rng.integers(0, DOCS, size=records)
    queries = docs[positives] @ rotation.T + noise * rng.normal(size=(records, DIM))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return InteractionSet(
        query_vectors=queries.astype(np.float32),
        positive_index=positives.astype(np.int64),
        doc_vectors=docs.astype(np.float32),
    )


def _top1(adapter: Adapter, data: InteractionSet) -> float:
    adapted = adapter.transform(data.query_vectors)
    best = (adapted @ data.doc_vectors.T).argmax(axis=1)
    return float((best == data.positive_index).mean())


def _loss(adapter: Adapter, data: InteractionSet) -> float:
    criterion = CorpusSoftmaxLoss(torch.from_numpy(data.doc_vectors), temperature=TEMPERATURE)
    with torch.no_grad():
        adapted = adapter(torch.from_numpy(data.query_vectors))
        return float(criterion(adapted, torch.from_numpy(data.positive_index)))


def _query_adapter(kind: str = "residual_linear") -> Adapter:
    return Adapter(DIM, side="query", kind=kind, rank=6 if kind == "low_rank" else None)


def _weights(adapter: Adapter) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in adapter.state_dict().items()}


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"temperature": 0.0}, "temperature"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_train_config_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"max_grad_norm": math.inf}, "max_grad_norm"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"grad_sample_mode": "magic"}, "grad_sample_mode"),
        ({"noise_seed": 1.5}, "noise_seed"),
    ],
)
def test_dp_config_rejects(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "noise_multiplier": 1.0,
        "max_grad_norm": 1.0,
        "delta": 1e-5,
        **kwargs,
    }
    with pytest.raises(TrainingError, match=message):
        DPConfig(**fields)  # type: ignore[arg-type]


def test_dp_config_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        DPConfig(1.0, 1.0, 1e-5)  # type: ignore[call-arg]


def test_rejects_adapters_that_do_not_fit() -> None:
    data = _rotated_task(20)
    config = TrainConfig(epochs=1)
    with pytest.raises(TrainingError, match="query-side"):
        train_adapter(Adapter(DIM, side="both"), data, config)
    with pytest.raises(TrainingError, match="dimensions"):
        train_adapter(Adapter(DIM, side="query", out_dim=8), data, config)
    with pytest.raises(TrainingError, match="dimensions"):
        train_adapter(Adapter(DIM + 1, side="query"), data, config)
    with pytest.raises(TrainingError, match="TrainConfig"):
        train_adapter(_query_adapter(), data, {"epochs": 1})  # type: ignore[arg-type]


# --- training --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["residual_linear", "low_rank"])
def test_plain_training_learns_the_rotation(kind: str) -> None:
    train, held_out = _rotated_task(400, seed=0), _rotated_task(200, seed=1)
    adapter = _query_adapter(kind)
    loss_before, acc_before = _loss(adapter, held_out), _top1(adapter, held_out)
    report = train_adapter(
        adapter, train, TrainConfig(epochs=15, batch_size=32, learning_rate=1e-2)
    )
    assert report.epsilon is None
    assert report.steps == 15 * math.ceil(400 / 32)
    assert report.losses[-1] < 0.5 * report.losses[0]
    assert _loss(adapter, held_out) < 0.5 * loss_before
    assert acc_before < 0.2
    # A residual map can express the rotation; a rank-6 update only part of it.
    assert _top1(adapter, held_out) > (0.8 if kind == "residual_linear" else acc_before + 0.1)


@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")
def test_dp_training_low_noise_learns_high_noise_does_not() -> None:
    train, held_out = _rotated_task(600, seed=0), _rotated_task(200, seed=1)
    config = TrainConfig(epochs=5, batch_size=60, learning_rate=2e-2)
    acc_base = _top1(_query_adapter(), held_out)

    low = _query_adapter()
    report_low = train_adapter(
        low,
        train,
        config,
        dp=DPConfig(noise_multiplier=0.5, max_grad_norm=1.0, delta=1e-5, noise_seed=1),
    )
    high = _query_adapter()
    initial = _weights(high)
    report_high = train_adapter(
        high,
        train,
        config,
        dp=DPConfig(noise_multiplier=200.0, max_grad_norm=1.0, delta=1e-5, noise_seed=1),
    )
    acc_low, acc_high = _top1(low, held_out), _top1(high, held_out)
    # A little noise: DP-SGD still learns the map.
    assert acc_low > acc_base + 0.5
    # Overwhelming noise: the weights move (noise is applied) but learn nothing useful.
    moved = sum(float((v - initial[k]).abs().sum()) for k, v in high.state_dict().items())
    assert moved > 1.0
    assert acc_high < acc_low - 0.3
    assert report_high.epsilon is not None
    assert report_low.epsilon is not None
    assert report_high.epsilon < report_low.epsilon


@pytest.mark.parametrize("kind", ["residual_linear", "low_rank", "shift"])
def test_dp_step_clips_each_record_exactly(kind: str) -> None:
    """noise 0, full batch, SGD lr 1: the update is -(sum of clipped per-record grads) / n.

    The privacy unit's premise, for every adapter kind: one record moves the update by at
    most the clip norm (``shift``'s lone parameter sits on the adapter itself, which
    Opacus handles through its functorch fallback rather than a layer sampler).
    """
    data = _rotated_task(40)
    clip = 0.05
    adapter = _query_adapter(kind)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0.0, 0.1, generator=generator)
    before = {n: p.detach().clone() for n, p in adapter.named_parameters()}
    docs = torch.from_numpy(data.doc_vectors)

    def loss_one(
        params: dict[str, torch.Tensor], query: torch.Tensor, positive: torch.Tensor
    ) -> torch.Tensor:
        adapted = functional_call(adapter, params, (query.unsqueeze(0),))
        return nn.functional.cross_entropy(adapted @ docs.T / TEMPERATURE, positive.unsqueeze(0))

    per_sample: dict[str, torch.Tensor] = vmap(grad(loss_one), in_dims=(None, 0, 0))(
        before, torch.from_numpy(data.query_vectors), torch.from_numpy(data.positive_index)
    )
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in per_sample.values()]).norm(dim=0)
    assert bool((norms > clip).all())  # every record is clipped
    factors = (clip / (norms + 1e-6)).clamp(max=1.0)
    for g in per_sample.values():
        clipped_norms = (g * factors.view(-1, *[1] * (g.dim() - 1))).flatten(1).norm(dim=1)
        assert bool((clipped_norms <= clip * (1 + 1e-5)).all())

    report = train_adapter(
        adapter,
        data,
        TrainConfig(
            epochs=1, batch_size=40, learning_rate=1.0, optimizer="sgd", temperature=TEMPERATURE
        ),
        dp=DPConfig(noise_multiplier=0.0, max_grad_norm=clip, delta=1e-5, noise_seed=0),
    )
    assert report.sample_rate == 1.0
    assert report.steps == 1
    assert report.epsilon == math.inf
    for name, p in adapter.named_parameters():
        g = per_sample[name]
        expected_update = -(g * factors.view(-1, *[1] * (g.dim() - 1))).sum(0) / 40
        torch.testing.assert_close(p.detach() - before[name], expected_update, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_opacus_clipped_per_sample_norms_are_bounded(mode: str) -> None:
    from opacus import PrivacyEngine

    data = _rotated_task(32)
    clip = 0.1
    adapter = _query_adapter("low_rank")
    docs = torch.from_numpy(data.doc_vectors)
    criterion = CorpusSoftmaxLoss(docs, temperature=TEMPERATURE)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(data.query_vectors), torch.from_numpy(data.positive_index)),
        batch_size=32,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = PrivacyEngine(accountant="rdp").make_private(
            module=adapter,
            optimizer=torch.optim.SGD(adapter.parameters(), lr=0.1),
            criterion=criterion,
            data_loader=loader,
            noise_multiplier=0.0,
            max_grad_norm=clip,
            grad_sample_mode=mode,
        )
        model = made[0]
        loss_fn = made[2] if mode == "ghost" else criterion
        queries = torch.from_numpy(data.query_vectors)
        positives = torch.from_numpy(data.positive_index)
        loss_fn(model(queries), positives).backward()
    if mode == "ghost":
        norms = model.per_sample_gradient_norms
        factors = model.get_clipping_coef()
    else:
        grads = [p.grad_sample for p in adapter.parameters()]  # type: ignore[attr-defined]
        norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)
        factors = (clip / (norms + 1e-6)).clamp(max=1.0)
    assert norms.shape == (32,)
    assert bool((norms > 0).all())
    assert bool((norms * factors <= clip * (1 + 1e-5)).all())
    model.to_standard_module()


def test_dp_epsilon_matches_opacus_rdp_accountant() -> None:
    from opacus.accountants import RDPAccountant

    data = _rotated_task(300)
    sigma = noise_multiplier_for(target_epsilon=8.0, target_delta=1e-5, sample_rate=0.1, steps=20)
    report = train_adapter(
        _query_adapter(),
        data,
        TrainConfig(epochs=2, batch_size=30),
        dp=DPConfig(noise_multiplier=sigma, max_grad_norm=1.0, delta=1e-5),
    )
    assert report.sample_rate == pytest.approx(0.1)
    assert report.steps == 20
    accountant = RDPAccountant()
    accountant.history = [(sigma, 0.1, 20)]
    assert report.epsilon == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-9)
    assert report.epsilon is not None
    assert 7.8 < report.epsilon <= 8.0
    assert report.delta == 1e-5
    assert report.accountant == ACCOUNTANT


def test_full_batch_dp_reports_the_exact_gdp_epsilon() -> None:
    # Prepare: full-batch DP-SGD (sample rate 1), 3 steps at noise 2.
    data = _rotated_task(40)
    config = TrainConfig(epochs=3, batch_size=40)
    dp = DPConfig(noise_multiplier=2.0, max_grad_norm=1.0, delta=1e-5, noise_seed=0)

    # Execute
    report = train_adapter(_query_adapter(), data, config, dp=dp)

    # Assert: the node ledger's accountant, exact Gaussian DP at sample rate 1.
    assert report.sample_rate == 1.0
    assert report.steps == 3
    exact = epsilon_for_mu(mu=steps_mu(noise_multiplier=2.0, steps=3), delta=1e-5)
    assert report.epsilon == pytest.approx(exact, rel=1e-12)
    assert report.accountant == ACCOUNTANT


def test_dp_training_leaves_a_plain_adapter() -> None:
    data = _rotated_task(60)
    adapter = _query_adapter("low_rank")
    keys = list(adapter.state_dict())
    before = _weights(adapter)
    train_adapter(
        adapter,
        data,
        TrainConfig(epochs=2, batch_size=20),
        dp=DPConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5),
    )
    assert list(adapter.state_dict()) == keys
    assert any(not torch.equal(before[k], v) for k, v in adapter.state_dict().items())
    for p in adapter.parameters():
        assert p.grad is None
        for attr in ("grad_sample", "_norm_sample", "_forward_counter", "summed_grad"):
            assert not hasattr(p, attr)
    for module in adapter.modules():
        assert "activations" not in module.__dict__
    # No Opacus hook is left: plain autograd on the returned adapter neither captures
    # activations nor produces per-sample state.
    adapter(torch.from_numpy(data.query_vectors)).sum().backward()
    assert not any("activations" in module.__dict__ for module in adapter.modules())
    assert not any(hasattr(p, "grad_sample") for p in adapter.parameters())


def test_empty_poisson_batches_take_noise_steps() -> None:
    data = _rotated_task(10)
    adapter = _query_adapter()
    # sample rate 1/10 over 10 records: about a third of the batches are empty.
    report = train_adapter(
        adapter,
        data,
        TrainConfig(epochs=5, batch_size=1),
        dp=DPConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5, noise_seed=4),
    )
    assert report.steps == 50
    assert all(math.isfinite(loss) for loss in report.losses)
    assert all(bool(torch.isfinite(v).all()) for v in adapter.state_dict().values())


def test_seeded_training_is_reproducible() -> None:
    data = _rotated_task(50)
    config = TrainConfig(epochs=2, batch_size=10, seed=3)
    dp = DPConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5, noise_seed=7)
    weights = []
    for _ in range(2):
        adapter = _query_adapter()
        train_adapter(adapter, data, config, dp=dp)
        weights.append(_weights(adapter))
    for key, value in weights[0].items():
        torch.testing.assert_close(value, weights[1][key])
