from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from dp_training import (
    CorpusSoftmaxLoss,
    InteractionSet,
    TrainingError,
    corpus_softmax_loss,
)
from embedding_core import Adapter

DIM = 16
DOCS = 120
TEMPERATURE = 0.07


def _unit(rows: int, generator: torch.Generator) -> torch.Tensor:
    return nn.functional.normalize(torch.randn(rows, DIM, generator=generator), dim=1)


def _adapter(kind: str) -> Adapter:
    adapter = Adapter(DIM, side="query", kind=kind, rank=4 if kind == "low_rank" else None)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # away from the zero initialisation, so every gradient is non-zero
        for p in adapter.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return adapter


def _numpy_set(n: int = 8, m: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "query_vectors": rng.normal(size=(n, 4)).astype(np.float32),
        "positive_index": rng.integers(0, m, size=n).astype(np.int64),
        "doc_vectors": rng.normal(size=(m, 4)).astype(np.float32),
    }


def test_interaction_set_valid_len_and_subset() -> None:
    data = InteractionSet(**_numpy_set())
    assert len(data) == 8
    assert data.dimension == 4
    assert data.num_docs == 10
    part = data.subset([1, 3])
    assert len(part) == 2
    np.testing.assert_array_equal(part.query_vectors, data.query_vectors[[1, 3]])
    np.testing.assert_array_equal(part.positive_index, data.positive_index[[1, 3]])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"query_vectors": np.zeros((8, 4), dtype=np.float64)}, "float32"),
        ({"positive_index": np.zeros(8, dtype=np.int32)}, "int64"),
        ({"query_vectors": np.zeros((8, 5), dtype=np.float32)}, "dimension"),
        ({"query_vectors": np.zeros(8, dtype=np.float32)}, "shapes"),
        ({"positive_index": np.zeros(7, dtype=np.int64)}, "7 positive indices"),
        ({"positive_index": np.full(8, 10, dtype=np.int64)}, "outside the 10 documents"),
        ({"positive_index": np.full(8, -1, dtype=np.int64)}, "outside"),
        ({"doc_vectors": np.full((10, 4), np.nan, dtype=np.float32)}, "NaN"),
        ({"query_vectors": np.zeros((0, 4), dtype=np.float32)}, "at least one record"),
        ({"doc_vectors": [[0.0] * 4] * 10}, "numpy array"),
    ],
)
def test_interaction_set_rejects(change: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {**_numpy_set(), **change}
    with pytest.raises(TrainingError, match=message):
        InteractionSet(**fields)  # type: ignore[arg-type]


def test_loss_matches_cross_entropy_and_reductions() -> None:
    generator = torch.Generator().manual_seed(0)
    docs, queries = _unit(DOCS, generator), _unit(6, generator)
    positives = torch.randint(0, DOCS, (6,), generator=generator)
    adapter = _adapter("residual_linear")
    expected = nn.functional.cross_entropy(
        adapter(queries) @ docs.T / TEMPERATURE, positives, reduction="none"
    )
    for fused in (True, False):
        per_record = corpus_softmax_loss(
            adapter,
            queries,
            positives,
            docs,
            temperature=TEMPERATURE,
            reduction="none",
            fused=fused,
        )
        assert per_record.shape == (6,)
        torch.testing.assert_close(per_record, expected)
        mean = corpus_softmax_loss(adapter, queries, positives, docs, temperature=TEMPERATURE)
        torch.testing.assert_close(mean, expected.mean())
        total = corpus_softmax_loss(
            adapter, queries, positives, docs, temperature=TEMPERATURE, reduction="sum"
        )
        torch.testing.assert_close(total, expected.sum())


@pytest.mark.parametrize("kind", ["residual_linear", "low_rank"])
def test_fused_loss_gradient_equals_autograd(kind: str) -> None:
    generator = torch.Generator().manual_seed(1)
    docs, queries = _unit(DOCS, generator), _unit(9, generator)
    positives = torch.randint(0, DOCS, (9,), generator=generator)
    adapter = _adapter(kind)
    grads = []
    for fused in (True, False):
        adapter.zero_grad(set_to_none=True)
        loss = corpus_softmax_loss(
            adapter, queries, positives, docs, temperature=TEMPERATURE, fused=fused
        )
        loss.backward()  # type: ignore[no-untyped-call]
        grads.append({n: p.grad.clone() for n, p in adapter.named_parameters()})  # type: ignore[union-attr]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-4)


def test_loss_rejects_bad_arguments() -> None:
    docs = torch.eye(DIM)
    adapter = _adapter("residual_linear")
    queries, positives = docs[:2], torch.tensor([0, 1])
    with pytest.raises(TrainingError, match="temperature"):
        corpus_softmax_loss(adapter, queries, positives, docs, temperature=0.0)
    with pytest.raises(TrainingError, match="reduction"):
        corpus_softmax_loss(
            adapter,
            queries,
            positives,
            docs,
            temperature=0.1,
            reduction="max",  # type: ignore[arg-type]
        )
    with pytest.raises(TrainingError, match="temperature"):
        CorpusSoftmaxLoss(docs, temperature=-1.0)


def _func_per_sample_grads(
    adapter: Adapter, queries: torch.Tensor, positives: torch.Tensor, docs: torch.Tensor
) -> dict[str, torch.Tensor]:
    params = {n: p.detach() for n, p in adapter.named_parameters()}

    def loss_one(
        p: dict[str, torch.Tensor], query: torch.Tensor, positive: torch.Tensor
    ) -> torch.Tensor:
        adapted = functional_call(adapter, p, (query.unsqueeze(0),))
        logits = adapted @ docs.T / TEMPERATURE
        return nn.functional.cross_entropy(logits, positive.unsqueeze(0))

    result: dict[str, torch.Tensor] = vmap(grad(loss_one), in_dims=(None, 0, 0))(
        params, queries, positives
    )
    return result


def _opacus_per_sample_grads(
    adapter: Adapter, queries: torch.Tensor, positives: torch.Tensor, docs: torch.Tensor
) -> dict[str, torch.Tensor]:
    from opacus import GradSampleModule

    model = GradSampleModule(adapter, loss_reduction="sum")
    criterion = CorpusSoftmaxLoss(docs, temperature=TEMPERATURE, reduction="sum")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        criterion(model(queries), positives).backward()
    grads = {
        n: p.grad_sample.detach().clone()  # type: ignore[attr-defined]
        for n, p in adapter.named_parameters()
    }
    model.to_standard_module()
    return grads


@pytest.mark.parametrize("kind", ["residual_linear", "low_rank"])
def test_per_record_gradients_are_independent(kind: str) -> None:
    """Changing record j (query and positive) leaves every other record's gradient."""
    generator = torch.Generator().manual_seed(2)
    docs, queries = _unit(DOCS, generator), _unit(12, generator)
    positives = torch.randint(0, DOCS, (12,), generator=generator)
    j = 5
    changed_queries, changed_positives = queries.clone(), positives.clone()
    changed_queries[j] = _unit(1, generator)[0]
    changed_positives[j] = (positives[j] + 17) % DOCS
    others = [i for i in range(12) if i != j]

    adapter = _adapter(kind)
    for per_sample in (_func_per_sample_grads, _opacus_per_sample_grads):
        before = per_sample(adapter, queries, positives, docs)
        after = per_sample(adapter, changed_queries, changed_positives, docs)
        for name, grads in before.items():
            assert grads.shape[0] == 12
            torch.testing.assert_close(after[name][others], grads[others], atol=1e-6, rtol=1e-5)
            assert not torch.allclose(after[name][j], grads[j])
    # Opacus's per-sample gradients are the per-record gradients of the loss.
    from_opacus = _opacus_per_sample_grads(adapter, queries, positives, docs)
    from_func = _func_per_sample_grads(adapter, queries, positives, docs)
    for name in from_func:
        torch.testing.assert_close(from_opacus[name], from_func[name], atol=1e-5, rtol=1e-4)
