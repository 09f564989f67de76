"""Ranking metrics with the conventions of BEIR / MTEB (Thakur et al., NeurIPS 2021).

nDCG@k uses linear gains and a ``log2(rank + 1)`` discount with the ideal ranking
built from all judged documents (as trec_eval's ``ndcg_cut``); recall@k counts
relevant (score > 0) documents in the top k over all relevant documents; MRR@k is
the reciprocal rank of the first relevant document in the top k. Each function
scores one query; :func:`mean_metrics` averages over queries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["mean_metrics", "mrr_at_k", "ndcg_at_k", "recall_at_k"]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain of one ranking, cut at ``k``."""
    _check_k(k)
    dcg = sum(relevance.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevance.values() if g > 0), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top ``k``."""
    _check_k(k)
    relevant = {doc for doc, gain in relevance.items() if gain > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document in the top ``k`` (0 if none)."""
    _check_k(k)
    for rank, doc in enumerate(ranked[:k]):
        if relevance.get(doc, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0


def mean_metrics(
    rankings: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    ndcg_k: Sequence[int] = (10,),
    recall_k: Sequence[int] = (100,),
    mrr_k: Sequence[int] = (10,),
) -> dict[str, float]:
    """Average the metrics over the queries that have judgements.

    Args:
        rankings: Query id to ranked document ids (best first).
        qrels: Query id to {document id: graded relevance}.
        ndcg_k: Cut-offs for nDCG.
        recall_k: Cut-offs for recall.
        mrr_k: Cut-offs for MRR.

    Returns:
        ``{"ndcg@10": ..., "recall@100": ..., "mrr@10": ...}`` as fractions.

    Raises:
        ValueError: A judged query has no ranking, or there are no judged queries.
    """
    judged = [qid for qid, rel in qrels.items() if any(g > 0 for g in rel.values())]
    if not judged:
        raise ValueError("no query has a relevant document; cannot average metrics")
    missing = [qid for qid in judged if qid not in rankings]
    if missing:
        raise ValueError(f"{len(missing)} judged queries have no ranking, e.g. {missing[:3]}")
    out: dict[str, float] = {}
    for name, fn, ks in (
        ("ndcg", ndcg_at_k, ndcg_k),
        ("recall", recall_at_k, recall_k),
        ("mrr", mrr_at_k, mrr_k),
    ):
        for k in ks:
            out[f"{name}@{k}"] = sum(fn(rankings[q], qrels[q], k) for q in judged) / len(judged)
    return out
