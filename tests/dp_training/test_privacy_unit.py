"""The DP-SGD privacy unit: groups of records sampled, clipped and accounted as one.

Pins that one query (or one person) with ``k`` records moves the clipped gradient sum by
at most the clip norm ``C`` (record-level units: up to ``k * C``), that the Opacus path
clips and samples over units, and the measured lack of protection for documents: one
added "hub" document moves the clipped sum by a multiple of ``C`` growing with the
number of records (docs/privacy_unit.md quotes these numbers).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from dp_training import (
    CorpusSoftmaxLoss,
    DPConfig,
    InteractionSet,
    TrainConfig,
    TrainingError,
    UnitSoftmaxLoss,
    clipped_unit_gradient_sum,
    pack_units,
    train_adapter,
)
from embedding_core import Adapter
from privacy import dpsgd_epsilon

DIM = 16
DOCS = 40
TEMPERATURE = 0.1
CLIP = 0.05  # small: every unit's gradient is clipped


def _unit_rows(x: NDArray[np.float64]) -> NDArray[np.float32]:
    rows: NDArray[np.float32] = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    return rows


def _data(
    query_of_record: list[int], seed: int = 0, unit_ids: NDArray[np.int64] | None = None
) -> InteractionSet:
    """Records whose queries are ``query_of_record`` (equal number = same query text)."""
    rng = np.random.default_rng(seed)
    queries = _unit_rows(rng.normal(size=(max(query_of_record) + 1, DIM)))
    return InteractionSet(
        query_vectors=np.ascontiguousarray(queries[query_of_record]),
        positive_index=rng.integers(0, DOCS, size=len(query_of_record)).astype(np.int64),
        doc_vectors=_unit_rows(np.random.default_rng(7).normal(size=(DOCS, DIM))),
        unit_ids=unit_ids,
    )


def _adapter(seed: int = 1) -> Adapter:
    adapter = Adapter(DIM, side="query", seed=seed)
    assert adapter.linear is not None
    with torch.no_grad():
        adapter.linear.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(seed))
    return adapter


def _flat(adapter: Adapter) -> NDArray[np.float64]:
    return torch.cat([p.detach().reshape(-1) for p in adapter.parameters()]).double().numpy()


def _with_query(data: InteractionSet, positives: list[int], seed: int) -> InteractionSet:
    """``data`` plus one new query with one record per entry of ``positives``."""
    query = _unit_rows(np.random.default_rng(seed).normal(size=(1, DIM)))
    ids = None
    if data.unit_ids is not None:  # record-level units: one new label per record
        start = int(data.unit_ids.max()) + 1
        ids = np.concatenate([data.unit_ids, np.arange(start, start + len(positives))])
    return InteractionSet(
        query_vectors=np.vstack([data.query_vectors, np.repeat(query, len(positives), axis=0)]),
        positive_index=np.concatenate([data.positive_index, positives]).astype(np.int64),
        doc_vectors=data.doc_vectors,
        unit_ids=ids,
    )


# --- units of the data ---------------------------------------------------------------------


def test_default_unit_is_one_query_and_labels_override_it() -> None:
    # Prepare
    data = _data([0, 0, 1, 2, 2, 2, 3])
    # Execute
    people = InteractionSet(
        query_vectors=data.query_vectors,
        positive_index=data.positive_index,
        doc_vectors=data.doc_vectors,
        unit_ids=np.array([9, 9, 9, 4, 4, 4, 4], dtype=np.int64),
    )
    # Assert
    assert len(data) == 7
    assert data.num_units == 4
    assert len(set(data.unit_index[[0, 1]])) == 1
    assert len(set(data.unit_index[[3, 4, 5]])) == 1
    assert people.num_units == 2
    assert people.subset([0, 3]).num_units == 2
    assert data.subset([3, 4]).num_units == 1


@pytest.mark.parametrize(
    ("unit_ids", "match"),
    [
        (np.zeros(3, dtype=np.int32), "int64"),
        (np.zeros(2, dtype=np.int64), "shape"),
        ([0, 1, 2], "int64"),
    ],
)
def test_bad_unit_labels_are_refused(unit_ids: object, match: str) -> None:
    # Prepare
    data = _data([0, 1, 2])
    # Execute / Assert
    with pytest.raises(TrainingError, match=match):
        InteractionSet(
            query_vectors=data.query_vectors,
            positive_index=data.positive_index,
            doc_vectors=data.doc_vectors,
            unit_ids=unit_ids,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("person", "query_shape", "target_shape"),
    [(None, (4, DIM), (4, 3)), ([0, 0, 0, 1, 1, 1], (2, 3, DIM), (2, 3, 3))],
)
def test_unit_loss_and_gradient_are_the_sum_over_its_records(
    person: list[int] | None, query_shape: tuple[int, ...], target_shape: tuple[int, ...]
) -> None:
    # Prepare: a record repeated (rows 1 and 2 equal) counts twice, as two records
    data = _data([0, 0, 0, 1, 2, 3], unit_ids=None if person is None else np.array(person))
    data = InteractionSet(
        query_vectors=data.query_vectors,
        positive_index=np.array([5, 7, 7, 1, 2, 3], dtype=np.int64),
        doc_vectors=data.doc_vectors,
        unit_ids=data.unit_ids,
    )
    documents = torch.from_numpy(data.doc_vectors)
    adapter = _adapter()
    # Execute
    queries, targets = pack_units(data)
    unit_losses = UnitSoftmaxLoss(documents, temperature=TEMPERATURE, reduction="none")(
        adapter(queries), targets
    )
    unit_grad = torch.autograd.grad(unit_losses.sum(), list(adapter.parameters()))
    record_losses = CorpusSoftmaxLoss(
        documents, temperature=TEMPERATURE, reduction="none", fused=False
    )(adapter(torch.from_numpy(data.query_vectors)), torch.from_numpy(data.positive_index))
    record_grad = torch.autograd.grad(record_losses.sum(), list(adapter.parameters()))
    # Assert
    assert tuple(queries.shape) == query_shape
    assert tuple(targets.shape) == target_shape
    per_unit = np.bincount(data.unit_index, weights=record_losses.detach().double().numpy())
    np.testing.assert_allclose(unit_losses.detach().double().numpy(), per_unit, rtol=1e-5)
    for got, want in zip(unit_grad, record_grad, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)


# --- what DP-SGD clips, samples and accounts --------------------------------------------------


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
@pytest.mark.parametrize("layout", ["record", "query", "person"])
def test_training_clips_each_unit_as_one(layout: str, mode: str) -> None:
    # Prepare: one full-batch SGD step at learning rate 1 without noise moves the
    # adapter by -(sum of clipped unit gradients) / units.
    queries = [0, 0, 0, 1, 2, 3, 3, 4, 5, 5, 5, 5, 6, 7]
    ids = {
        "record": np.arange(len(queries), dtype=np.int64),
        "query": None,
        "person": np.array(queries, dtype=np.int64) // 3,
    }[layout]
    data = _data(queries, unit_ids=ids)
    adapter = _adapter()
    expected = clipped_unit_gradient_sum(adapter, data, max_grad_norm=CLIP, temperature=TEMPERATURE)
    before = _flat(adapter)
    config = TrainConfig(
        epochs=1, batch_size=100, learning_rate=1.0, optimizer="sgd", temperature=TEMPERATURE
    )
    dp = DPConfig(
        noise_multiplier=0.0,
        max_grad_norm=CLIP,
        delta=1e-5,
        grad_sample_mode="hooks" if mode == "hooks" else "ghost",
        noise_seed=3,
    )
    # Execute
    report = train_adapter(adapter, data, config, dp=dp)
    # Assert
    assert report.units == data.num_units
    assert report.records == len(queries)
    np.testing.assert_allclose(-(_flat(adapter) - before) * report.units, expected, atol=1e-6)


@pytest.mark.parametrize("k", [2, 5])
def test_adding_one_query_of_k_records_moves_the_noisy_sum_by_at_most_the_clip(k: int) -> None:
    # Prepare: the same query clicked k times on one document (duplicated records), next
    # to 20 single-record queries; same noise seed on both sides, noise multiplier 1.
    base_queries = list(range(20))
    config = TrainConfig(
        epochs=1, batch_size=100, learning_rate=1.0, optimizer="sgd", temperature=TEMPERATURE
    )
    dp = DPConfig(noise_multiplier=1.0, max_grad_norm=CLIP, delta=1e-5, noise_seed=11)
    moved = {}
    for unit in ("query", "record"):
        ids = None if unit == "query" else np.arange(20, dtype=np.int64)
        without = _data(base_queries, unit_ids=ids)
        with_query = _with_query(without, [3] * k, seed=42)
        noisy_sums = []
        for data in (without, with_query):
            adapter = _adapter()
            before = _flat(adapter)
            # Execute
            report = train_adapter(adapter, data, config, dp=dp)
            noisy_sums.append(-(_flat(adapter) - before) * report.units)
        moved[unit] = float(np.linalg.norm(noisy_sums[1] - noisy_sums[0])) / CLIP
    # Assert: one unit moves the noisy sum by its clipped gradient, at most C; k records
    # counted as k units move it by k * C.
    assert moved["query"] <= 1.0 + 1e-4
    assert moved["query"] > 0.99  # the query's gradient is clipped: it moves by C itself
    assert moved["record"] == pytest.approx(k, rel=1e-3)


def test_sample_rate_and_epsilon_are_over_units() -> None:
    # Prepare: 40 records, 20 queries of two records each, 10 units a batch.
    data = _data([q for q in range(20) for _ in range(2)])
    config = TrainConfig(epochs=2, batch_size=10, temperature=TEMPERATURE)
    dp = DPConfig(noise_multiplier=1.5, max_grad_norm=CLIP, delta=1e-5, noise_seed=5)
    # Execute
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = train_adapter(_adapter(), data, config, dp=dp)
    # Assert: 1 / ceil(20 / 10), not 1 / ceil(40 / 10)
    assert report.units == 20
    assert report.records == 40
    assert report.sample_rate == pytest.approx(1 / 2)
    assert report.steps == 2 * 2
    assert report.epsilon == pytest.approx(
        dpsgd_epsilon(noise_multiplier=1.5, sample_rate=0.5, steps=4, delta=1e-5)
    )


# --- what the unit does not cover: the node's documents -------------------------------------


def hub_document_shift(records: int, *, seed: int = 0, clip: float = 1.0) -> float:
    """How far one added hub document moves the clipped gradient sum, in clip norms.

    Queries and documents share a common direction (as sentence embeddings do); the hub
    document is that direction, a strong negative for every record. Temperature 0.05.
    """
    rng = np.random.default_rng(seed)
    dim, docs = 32, 200
    common = _unit_rows(rng.normal(size=(1, dim)))
    queries = _unit_rows(common + rng.normal(size=(records, dim)) / math.sqrt(dim))
    documents = _unit_rows(common + rng.normal(size=(docs, dim)) / math.sqrt(dim))
    positives = rng.integers(0, docs, size=records).astype(np.int64)
    adapter = Adapter(dim, side="query", seed=seed)
    sums = [
        clipped_unit_gradient_sum(
            adapter,
            InteractionSet(query_vectors=queries, positive_index=positives, doc_vectors=d),
            max_grad_norm=clip,
            temperature=0.05,
        )
        for d in (documents, np.vstack([documents, common]))
    ]
    return float(np.linalg.norm(sums[1] - sums[0])) / clip


def test_one_hub_document_moves_the_clipped_sum_by_many_clip_norms() -> None:
    # Execute
    shifts = [hub_document_shift(n) for n in (150, 300, 600)]
    # Assert: measured 2.26, 4.00, 7.66 clip norms: linear in the records, unbounded by C,
    # so the training DP does not cover the node's documents (docs/privacy_unit.md).
    assert shifts[0] > 1.5
    assert shifts[1] / shifts[0] > 1.6
    assert shifts[2] / shifts[1] > 1.6
    assert shifts[2] > 6.0
