"""Evaluation harness: STS Spearman and BEIR retrieval metrics."""

from embedding_core.evaluation.metrics import mean_metrics, mrr_at_k, ndcg_at_k, recall_at_k
from embedding_core.evaluation.retrieval import (
    RetrievalVectors,
    embed_retrieval,
    evaluate_retrieval,
    score_retrieval,
)
from embedding_core.evaluation.search import exact_top_k
from embedding_core.evaluation.sts import evaluate_sts

__all__ = [
    "RetrievalVectors",
    "embed_retrieval",
    "evaluate_retrieval",
    "evaluate_sts",
    "exact_top_k",
    "mean_metrics",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "score_retrieval",
]
