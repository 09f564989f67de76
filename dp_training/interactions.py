"""A node's private interaction records and the retrieval loss trained on them.

A record is a (query, relevant document) pair. The privacy unit of DP-SGD is a *group*
of records (:attr:`InteractionSet.unit_index`): by default all records of one query
(records with identical query vectors), or all records of one person when the node's
data names people; see :mod:`dp_training.privacy_unit`. The adapter is query-side: only
query vectors pass through its parameters, the document vectors are frozen base-encoder
outputs. The loss of record ``i`` is the cross-entropy of the softmax over *all* the
node's documents of ``adapter(q_i) · D^T / temperature`` with its relevant document as
the target. The negatives are document vectors, never other records of the batch, so a
unit's gradient depends on that unit's records (and on the documents, which the unit does
not cover) and Opacus's per-sample clipping bounds each unit's contribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.autograd.function import once_differentiable

from embedding_core.errors import FedembedError

__all__ = ["CorpusSoftmaxLoss", "InteractionSet", "TrainingError", "corpus_softmax_loss"]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


class TrainingError(FedembedError):
    """Training data or a training configuration is invalid."""


@dataclass(frozen=True)
class InteractionSet:
    """A node's interaction records as base-encoder vectors.

    Attributes:
        query_vectors: ``(n, d)`` float32 query vectors, one per record.
        positive_index: ``(n,)`` int64 row of ``doc_vectors`` relevant to each record.
        doc_vectors: ``(m, d)`` float32 vectors of the node's documents (the softmax's
            candidates; not private records, and not covered by the training DP).
        unit_ids: ``(n,)`` int64 privacy-unit label of each record (e.g. a person or a
            query number; any values, equal label = same unit). ``None`` (default): one
            unit per distinct query vector, i.e. all records of one query. Pass
            ``np.arange(n)`` for record-level units, which understates what one query
            or person contributes whenever records share one.
        negative_vectors: ``(k, d)`` float32 vectors of public text (not the node's). When
            given, a record's softmax candidates are these plus its unit's own relevant
            documents, and the node's other documents take no part in its loss: a node
            document then influences only the units whose records cite it (see
            :func:`dp_training.privacy_unit.document_unit_ids`). ``None`` (default): every
            node document is a candidate for every record, and the training DP does not
            cover the documents.
    """

    query_vectors: NDArray[np.float32]
    positive_index: NDArray[np.int64]
    doc_vectors: NDArray[np.float32]
    unit_ids: NDArray[np.int64] | None = None
    negative_vectors: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        q, p, d = self.query_vectors, self.positive_index, self.doc_vectors
        for name, array in (("query_vectors", q), ("positive_index", p), ("doc_vectors", d)):
            if not isinstance(array, np.ndarray):
                raise TrainingError(
                    f"{name} must be a numpy array, got {type(array).__name__}",
                    fix="pass np.asarray(...) with the dtype documented on InteractionSet",
                )
        if q.dtype != np.float32 or d.dtype != np.float32:
            raise TrainingError(
                f"query_vectors and doc_vectors must be float32, got {q.dtype} and {d.dtype}",
                fix="convert with .astype(np.float32)",
            )
        if p.dtype != np.int64:
            raise TrainingError(
                f"positive_index must be int64, got {p.dtype}",
                fix="convert with .astype(np.int64)",
            )
        if q.ndim != 2 or d.ndim != 2 or p.ndim != 1:
            raise TrainingError(
                f"shapes query_vectors={q.shape}, positive_index={p.shape}, "
                f"doc_vectors={d.shape} are not (n, d), (n,), (m, d)",
                expected="2-D query and document matrices and a 1-D index vector",
            )
        if q.shape[0] == 0 or d.shape[0] == 0 or q.shape[1] == 0:
            raise TrainingError(
                f"need at least one record, one document and one dimension; got "
                f"{q.shape[0]} records, {d.shape[0]} documents, dimension {q.shape[1]}",
            )
        if q.shape[1] != d.shape[1]:
            raise TrainingError(
                f"query dimension {q.shape[1]} differs from document dimension {d.shape[1]}",
                fix="encode queries and documents with the same encoder",
            )
        if p.shape[0] != q.shape[0]:
            raise TrainingError(
                f"{p.shape[0]} positive indices for {q.shape[0]} query vectors",
                expected="one relevant document index per record",
            )
        if p.min() < 0 or p.max() >= d.shape[0]:
            raise TrainingError(
                f"positive_index values span [{p.min()}, {p.max()}], outside the "
                f"{d.shape[0]} documents",
                expected=f"indices in [0, {d.shape[0] - 1}]",
            )
        if not (np.isfinite(q).all() and np.isfinite(d).all()):
            raise TrainingError(
                "query_vectors or doc_vectors hold NaN or infinite values",
                fix="re-encode the texts; check the encoder output",
            )
        u = self.unit_ids
        if u is not None and (
            not isinstance(u, np.ndarray) or u.dtype != np.int64 or u.shape != p.shape
        ):
            raise TrainingError(
                f"unit_ids must be an int64 array of shape {p.shape}, got "
                f"{getattr(u, 'dtype', type(u).__name__)} {getattr(u, 'shape', '')}",
                expected="one privacy-unit label per record, or None (one unit per query)",
                fix="pass np.asarray(labels, dtype=np.int64)",
            )

        k = self.negative_vectors
        if k is not None and (
            not isinstance(k, np.ndarray)
            or k.dtype != np.float32
            or k.ndim != 2
            or k.shape[0] == 0
            or k.shape[1] != q.shape[1]
            or not np.isfinite(k).all()
        ):
            raise TrainingError(
                "negative_vectors must be a finite float32 (k, d) array with k >= 1 and "
                f"d = {q.shape[1]}, got {getattr(k, 'dtype', type(k).__name__)} "
                f"{getattr(k, 'shape', '')}",
                fix="encode the public texts with the same encoder, .astype(np.float32)",
            )

    def __len__(self) -> int:
        return int(self.query_vectors.shape[0])

    @cached_property
    def unit_index(self) -> NDArray[np.int64]:
        """``(n,)`` unit of each record, numbered ``0 .. num_units - 1``."""
        if self.unit_ids is None:
            _, inverse = np.unique(self.query_vectors, axis=0, return_inverse=True)
        else:
            _, inverse = np.unique(self.unit_ids, return_inverse=True)
        return np.ascontiguousarray(inverse.reshape(-1), dtype=np.int64)

    @property
    def num_units(self) -> int:
        """Number of privacy units (what DP-SGD samples, clips and accounts)."""
        return int(self.unit_index.max()) + 1

    @property
    def dimension(self) -> int:
        """Width of the vectors."""
        return int(self.query_vectors.shape[1])

    @property
    def num_docs(self) -> int:
        """Number of candidate documents."""
        return int(self.doc_vectors.shape[0])

    def subset(self, rows: NDArray[np.int64] | list[int]) -> InteractionSet:
        """The records at ``rows`` (with the same documents and unit labels)."""
        index = np.asarray(rows, dtype=np.int64)
        return InteractionSet(
            query_vectors=np.ascontiguousarray(self.query_vectors[index]),
            positive_index=np.ascontiguousarray(self.positive_index[index]),
            doc_vectors=self.doc_vectors,
            unit_ids=None if self.unit_ids is None else self.unit_ids[index],
            negative_vectors=self.negative_vectors,
        )


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise TrainingError(f"reduction={reduction!r} is not supported", expected="mean/sum/none")


class _FusedCorpusSoftmax(torch.autograd.Function):
    """Per-record corpus-softmax loss whose input gradient is computed in the forward.

    ``d loss_i / d y_i = (softmax_i - onehot_i) D / T`` costs one ``(b, m) x (m, d)``
    product, which the forward pass does right after the logits; the backward pass is
    then a ``(b, d)`` scaling. Autograd would spend the same product in its backward,
    but Opacus's ghost clipping runs the backward twice (once for the per-record
    norms, once for the clipped sum), so the fused form makes a DP step cost about a
    plain one.
    """

    @staticmethod
    def forward(
        ctx: Any,
        adapted: torch.Tensor,
        positive_index: torch.Tensor,
        doc_vectors: torch.Tensor,
        temperature: float,
    ) -> torch.Tensor:
        logits = (adapted @ doc_vectors.T).div_(temperature)
        log_probs = torch.log_softmax(logits, dim=1)
        targets = positive_index.unsqueeze(1)
        loss = -log_probs.gather(1, targets).squeeze(1)
        if ctx.needs_input_grad[0]:
            residual = log_probs.exp_()
            rows = torch.arange(residual.shape[0], device=residual.device)
            residual[rows, positive_index] -= 1.0
            ctx.save_for_backward((residual @ doc_vectors).div_(temperature))
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (grad_input,) = ctx.saved_tensors
        return grad_loss.unsqueeze(1) * grad_input, None, None, None


def _reduce(per_record: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_record.mean()
    if reduction == "sum":
        return per_record.sum()
    return per_record


def _corpus_logits_loss(
    adapted_queries: torch.Tensor,
    positive_index: torch.Tensor,
    doc_vectors: torch.Tensor,
    temperature: float,
    reduction: str,
    *,
    fused: bool = True,
) -> torch.Tensor:
    if fused and not doc_vectors.requires_grad:
        per_record: torch.Tensor = _FusedCorpusSoftmax.apply(  # type: ignore[no-untyped-call]
            adapted_queries, positive_index, doc_vectors, temperature
        )
        return _reduce(per_record, reduction)
    logits = adapted_queries @ doc_vectors.T
    return nn.functional.cross_entropy(logits / temperature, positive_index, reduction=reduction)


def corpus_softmax_loss(
    adapter: nn.Module,
    query_vectors: torch.Tensor,
    positive_index: torch.Tensor,
    doc_vectors: torch.Tensor,
    *,
    temperature: float,
    reduction: Reduction = "mean",
    fused: bool = True,
) -> torch.Tensor:
    """Softmax cross-entropy of each adapted query against the whole document set.

    Args:
        adapter: The query-side adapter (or its Opacus wrapper).
        query_vectors: ``(b, d)`` base query vectors.
        positive_index: ``(b,)`` int64 index of each record's relevant document.
        doc_vectors: ``(m, d)`` frozen document vectors (not passed through the adapter).
        temperature: Softmax temperature (> 0); cosine scores are divided by it.
        reduction: ``mean`` (default), ``sum`` or ``none`` (per-record losses).
        fused: Compute the gradient with respect to the adapted queries in the forward
            pass (same values as autograd, cheaper under ghost clipping); ``False`` uses
            plain autograd through ``cross_entropy``.

    Returns:
        The reduced loss, or ``(b,)`` per-record losses for ``reduction="none"``.
    """
    _check_reduction(reduction)
    if not temperature > 0:
        raise TrainingError(f"temperature must be > 0, got {temperature}")
    return _corpus_logits_loss(
        adapter(query_vectors), positive_index, doc_vectors, temperature, reduction, fused=fused
    )


class CorpusSoftmaxLoss(nn.Module):
    """:func:`corpus_softmax_loss` as a criterion on already-adapted queries.

    Holds the frozen document matrix as a plain attribute (not a parameter or buffer)
    and exposes ``reduction``, which Opacus's ghost-clipping loss wrapper switches to
    ``"none"`` to obtain per-record losses.
    """

    def __init__(
        self,
        doc_vectors: torch.Tensor,
        *,
        temperature: float,
        reduction: Reduction = "mean",
        fused: bool = True,
    ) -> None:
        super().__init__()
        _check_reduction(reduction)
        if not temperature > 0:
            raise TrainingError(f"temperature must be > 0, got {temperature}")
        self.doc_vectors = doc_vectors.detach()
        self.temperature = float(temperature)
        self.reduction: str = reduction
        self.fused = fused

    def forward(self, adapted_queries: torch.Tensor, positive_index: torch.Tensor) -> torch.Tensor:
        """Loss of ``(b, d)`` adapted queries against their ``(b,)`` positive indices."""
        return _corpus_logits_loss(
            adapted_queries,
            positive_index,
            self.doc_vectors,
            self.temperature,
            self.reduction,
            fused=self.fused,
        )
