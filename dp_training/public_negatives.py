"""Negatives from public text: a recipe that bounds one node document's influence.

With the node's documents as every record's negatives, adding one document moves every
record's gradient, and the training DP does not cover documents (``docs/privacy_unit.md``
measures it). Here a query's softmax candidates are *public* vectors (text anyone may
hold, e.g. an open corpus of the domain) plus the query's own relevant documents, so a
node document enters only the loss of the records that cite it. Grouping every query
with the documents it cites (:func:`document_unit_ids`, connected components of the
query-document graph) puts a document and all records that use it in one privacy unit:
removing the document changes that one unit, so it moves the clipped sum by at most
``2 C`` (``C`` when the whole unit goes), the sensitivity of one replaced unit.

The loss is the in-domain contrastive loss of dense retrieval with a fixed negative pool
(Karpukhin et al., "Dense Passage Retrieval for Open-Domain Question Answering", EMNLP
2020, section 3.2), with the pool restricted to public text.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["document_unit_ids", "public_negative_loss"]


def public_negative_loss(
    adapted: torch.Tensor,
    targets: torch.Tensor,
    doc_vectors: torch.Tensor,
    negatives: torch.Tensor,
    *,
    temperature: float,
) -> torch.Tensor:
    """Per-row loss, candidates = ``negatives`` plus the row's own positives.

    ``adapted`` is ``(..., d)``, ``targets`` ``(...)`` or ``(..., P)`` document rows
    (``-1`` pads). Row ``r`` with distinct positives ``P_r``: ``loss_r = sum over its
    records of -log softmax(y_r [negatives; D_{P_r}]^T / T)`` at the record's document.
    Returns ``adapted.shape[:-1]`` losses (``0`` for an all-padding row).
    """
    if targets.ndim == adapted.ndim - 1:
        targets = targets.unsqueeze(-1)
    flat = adapted.reshape(-1, adapted.shape[-1])
    rows = targets.reshape(flat.shape[0], -1)
    valid = rows >= 0
    safe = rows.clamp(min=0)
    # A document twice in a row's targets is two records but one candidate.
    same = safe.unsqueeze(2) == safe.unsqueeze(1)
    earlier = torch.tril(torch.ones_like(same), diagonal=-1)
    repeat = (same & earlier & valid.unsqueeze(1)).any(dim=2)
    positive_logits = torch.einsum("rd,rpd->rp", flat, doc_vectors[safe]) / temperature
    candidate = positive_logits.masked_fill(~valid | repeat, float("-inf"))
    log_z = torch.logsumexp(torch.cat([flat @ negatives.T / temperature, candidate], dim=1), 1)
    per_record = (log_z.unsqueeze(1) - positive_logits) * valid.to(flat.dtype)
    return per_record.sum(1).reshape(adapted.shape[:-1])


def document_unit_ids(
    query_vectors: NDArray[np.float32], positive_index: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Units that hold each document with every record citing it.

    Connected components of the graph whose edges are the records (query, document):
    records share a unit when they share a query (identical vectors) or a document,
    directly or through a chain. Returns one unit label per record.
    """
    _, query_of = np.unique(query_vectors, axis=0, return_inverse=True)
    query_of = query_of.reshape(-1)
    queries = int(query_of.max()) + 1
    parent = np.arange(queries + int(positive_index.max()) + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for q, d in zip(query_of.tolist(), positive_index.tolist(), strict=True):
        parent[root(q)] = root(queries + d)
    return np.array([root(q) for q in query_of.tolist()], dtype=np.int64)
