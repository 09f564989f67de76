"""The DP-SGD privacy unit: a group of interaction records, clipped and sampled as one.

A node's records are not independent: one query with several relevant documents is
several records, and one person asks several queries. DP-SGD bounds the influence of
one *sampled, clipped unit*, so the unit must be everything one person (or, without a
person column, one query) contributed. Here a unit's gradient is the **sum** of its
records' gradients, clipped to ``max_grad_norm`` as one vector; Poisson sampling and the
accountant's sample rate run over units (group privacy by construction, as user-level
DP-SGD in McMahan et al., "Learning Differentially Private Recurrent Language Models",
ICLR 2018).

Packing: a unit's records become its *distinct* query vectors, each with the list of its
relevant documents. A unit of one query is one sample with a multi-positive target, so
Opacus's per-sample machinery (ghost clipping included) is unchanged; a unit of several
queries is a ``(queries, d)`` sequence, whose summed gradient Opacus clips per sample
(for a linear layer, ``|sum_t g_t a_t^T|`` from the Gram matrices). The loss of a query
row is the sum over its positives of the corpus-softmax cross-entropy, so the unit's
loss (and gradient) is exactly the sum over its records.

What the unit does not cover: the node's documents are the softmax's negatives for every
record and are not private records; adding one document moves every record's gradient
(see :func:`clipped_unit_gradient_sum` and ``docs/privacy_unit.md``), unless the
negatives come from public text (:mod:`dp_training.public_negatives`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.autograd.function import once_differentiable

from dp_training.interactions import (
    InteractionSet,
    Reduction,
    TrainingError,
    _check_reduction,
    _corpus_logits_loss,
    _reduce,
)
from dp_training.public_negatives import public_negative_loss

__all__ = [
    "PAD",
    "UnitSoftmaxLoss",
    "clipped_unit_gradient_sum",
    "negative_tensor",
    "pack_units",
]

PAD = -1
"""Target index of a padding slot (no positive, no query)."""


def pack_units(data: InteractionSet) -> tuple[torch.Tensor, torch.Tensor]:
    """``data``'s privacy units as one sample each: ``(queries, targets)``.

    Returns, with ``G = data.num_units``, ``K`` the most distinct queries in a unit and
    ``P`` the most records of one query in a unit:

    - every unit one record: ``(G, d)`` queries and ``(G,)`` positive indices (the
      record-level layout, same tensors as the records);
    - every unit one query: ``(G, d)`` queries and ``(G, P)`` targets;
    - otherwise ``(G, K, d)`` queries and ``(G, K, P)`` targets.

    Targets hold document rows, :data:`PAD` where a slot is empty; a record that occurs
    twice in a unit occurs twice in its targets (it counts twice, as two records).
    """
    units = data.unit_index
    order = np.argsort(units, kind="stable")
    bounds = np.flatnonzero(np.diff(units[order])) + 1
    members = np.split(order, bounds)
    rows: list[list[tuple[int, list[int]]]] = []
    for unit in members:
        by_query: dict[bytes, tuple[int, list[int]]] = {}
        for record in unit:
            key = data.query_vectors[record].tobytes()
            _, positives = by_query.setdefault(key, (int(record), []))
            positives.append(int(data.positive_index[record]))
        rows.append(list(by_query.values()))
    most_queries = max(len(u) for u in rows)
    most_positives = max(len(p) for u in rows for _, p in u)
    if most_queries == 1 and most_positives == 1:
        first_rows = np.array([u[0][0] for u in rows], dtype=np.int64)
        return (
            torch.from_numpy(np.ascontiguousarray(data.query_vectors[first_rows])),
            torch.from_numpy(np.ascontiguousarray(data.positive_index[first_rows])),
        )
    queries = np.zeros((len(rows), most_queries, data.dimension), dtype=np.float32)
    targets = np.full((len(rows), most_queries, most_positives), PAD, dtype=np.int64)
    for g, unit_rows in enumerate(rows):
        for k, (record, positives) in enumerate(unit_rows):
            queries[g, k] = data.query_vectors[record]
            targets[g, k, : len(positives)] = positives
    if most_queries == 1:
        return torch.from_numpy(queries[:, 0]), torch.from_numpy(targets[:, 0])
    return torch.from_numpy(queries), torch.from_numpy(targets)


class _FusedMultiPositiveSoftmax(torch.autograd.Function):
    """Sum over each row's positives of the corpus-softmax loss, gradient in the forward.

    Row ``r`` with positives ``P_r`` (padding :data:`PAD`): ``loss_r = sum_{p in P_r}
    -log softmax(y_r D^T / T)_p`` and ``d loss_r / d y_r = (|P_r| softmax_r -
    count_r) D / T``, with ``count_r`` the multiplicity of each document in ``P_r``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        adapted: torch.Tensor,
        targets: torch.Tensor,
        doc_vectors: torch.Tensor,
        temperature: float,
    ) -> torch.Tensor:
        flat = adapted.reshape(-1, adapted.shape[-1])
        flat_targets = targets.reshape(flat.shape[0], -1)
        valid = flat_targets >= 0
        safe = flat_targets.clamp(min=0)
        weight = valid.to(flat.dtype)
        log_probs = torch.log_softmax((flat @ doc_vectors.T).div_(temperature), dim=1)
        loss = -(log_probs.gather(1, safe) * weight).sum(1)
        if ctx.needs_input_grad[0]:
            residual = log_probs.exp_().mul_(weight.sum(1, keepdim=True))
            residual.scatter_add_(1, safe, -weight)
            grad = (residual @ doc_vectors).div_(temperature)
            ctx.save_for_backward(grad.reshape(adapted.shape))
        return loss.reshape(adapted.shape[:-1])

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (grad_input,) = ctx.saved_tensors
        return grad_loss.unsqueeze(-1) * grad_input, None, None, None


def unit_softmax_loss(
    adapted: torch.Tensor,
    targets: torch.Tensor,
    doc_vectors: torch.Tensor,
    *,
    temperature: float,
    reduction: str = "mean",
    negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-unit summed corpus-softmax loss of packed units (see :func:`pack_units`).

    With ``negatives`` (public vectors), a row's candidates are those plus its own
    positives (:func:`dp_training.public_negatives.public_negative_loss`).
    """
    _check_reduction(reduction)
    if negatives is not None:
        per_query = public_negative_loss(
            adapted, targets, doc_vectors, negatives, temperature=temperature
        )
        return _reduce(per_query.sum(1) if per_query.ndim == 2 else per_query, reduction)
    if targets.ndim == 1:
        return _corpus_logits_loss(adapted, targets, doc_vectors, temperature, reduction)
    if doc_vectors.requires_grad:
        raise TrainingError("unit losses need frozen document vectors (requires_grad=False)")
    per_row: torch.Tensor = _FusedMultiPositiveSoftmax.apply(  # type: ignore[no-untyped-call]
        adapted, targets, doc_vectors, temperature
    )
    per_unit = per_row.sum(1) if per_row.ndim == 2 else per_row
    return _reduce(per_unit, reduction)


class UnitSoftmaxLoss(nn.Module):
    """:func:`unit_softmax_loss` as a criterion; ``reduction`` as Opacus's ghost wrapper needs."""

    def __init__(
        self,
        doc_vectors: torch.Tensor,
        *,
        temperature: float,
        reduction: Reduction = "mean",
        negatives: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        _check_reduction(reduction)
        if not temperature > 0:
            raise TrainingError(f"temperature must be > 0, got {temperature}")
        self.doc_vectors = doc_vectors.detach()
        self.negatives = None if negatives is None else negatives.detach()
        self.temperature = float(temperature)
        self.reduction: str = reduction

    def forward(self, adapted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of packed adapted units against their packed targets."""
        return unit_softmax_loss(
            adapted,
            targets,
            self.doc_vectors,
            temperature=self.temperature,
            reduction=self.reduction,
            negatives=self.negatives,
        )


def negative_tensor(data: InteractionSet) -> torch.Tensor | None:
    """``data``'s public negative vectors as a tensor (``None`` without)."""
    if data.negative_vectors is None:
        return None
    return torch.from_numpy(np.ascontiguousarray(data.negative_vectors))


def clipped_unit_gradient_sum(
    adapter: nn.Module,
    data: InteractionSet,
    *,
    max_grad_norm: float,
    temperature: float,
) -> NDArray[np.float64]:
    """Sum over ``data``'s units of each unit's gradient clipped to ``max_grad_norm``.

    The noise-free quantity DP-SGD adds Gaussian noise to at sample rate 1 (flattened
    over the adapter's trainable parameters). Comparing it on two data sets measures a
    change's sensitivity: at most ``max_grad_norm`` when they differ in one unit, and
    unbounded when they differ in one *document* (every unit's softmax uses them all).
    """
    if not max_grad_norm > 0:
        raise TrainingError(f"max_grad_norm must be > 0, got {max_grad_norm}")
    params = [p for p in adapter.parameters() if p.requires_grad]
    queries, targets = pack_units(data)
    documents = torch.from_numpy(np.ascontiguousarray(data.doc_vectors))
    negatives = negative_tensor(data)
    total = np.zeros(sum(p.numel() for p in params), dtype=np.float64)
    for unit in range(queries.shape[0]):
        loss = unit_softmax_loss(
            adapter(queries[unit : unit + 1]),
            targets[unit : unit + 1],
            documents,
            temperature=temperature,
            reduction="sum",
            negatives=negatives,
        )
        grads = torch.autograd.grad(loss, params)
        flat = torch.cat([g.reshape(-1) for g in grads]).double().numpy()
        norm = float(np.linalg.norm(flat))
        total += flat * min(1.0, max_grad_norm / max(norm, 1e-12))
    return total
