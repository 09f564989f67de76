"""Retrieval evaluation on a BEIR-format dataset (exact search, BEIR metrics)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.cache import EmbeddingCache
from embedding_core.data import BeirDataset
from embedding_core.encoder import DEFAULT_BATCH_SIZE, Encoder
from embedding_core.evaluation.metrics import mean_metrics
from embedding_core.evaluation.search import exact_top_k

__all__ = ["RetrievalVectors", "embed_retrieval", "evaluate_retrieval", "score_retrieval"]

logger = logging.getLogger(__name__)

RETRIEVAL_DEPTH = 100


@dataclass(frozen=True)
class RetrievalVectors:
    """Base-encoder vectors of a dataset's judged queries and its corpus."""

    query_ids: list[str]
    queries: NDArray[np.float32]
    documents: NDArray[np.float32]


def embed_retrieval(
    encoder: Encoder,
    dataset: BeirDataset,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    show_progress: bool | None = None,
) -> RetrievalVectors:
    """Encode the corpus (through the cache when given) and the judged queries."""
    started = time.perf_counter()
    if cache is not None:
        documents = cache.get_or_encode(
            encoder,
            dataset.corpus_texts,
            batch_size=batch_size,
            show_progress=show_progress,
            what=f"encode {dataset.name} corpus",
        )
    else:
        documents = encoder.encode(
            dataset.corpus_texts,
            batch_size=batch_size,
            show_progress=show_progress,
            what=f"encode {dataset.name} corpus",
        )
    query_ids = [qid for qid in dataset.qrels if qid in dataset.queries]
    queries = encoder.encode(
        [dataset.queries[q] for q in query_ids],
        batch_size=batch_size,
        show_progress=show_progress,
        what=f"encode {dataset.name} queries",
    )
    logger.info(
        "embed: dataset=%s backend=%s docs=%d queries=%d seconds=%.1f",
        dataset.name,
        encoder.backend,
        documents.shape[0],
        queries.shape[0],
        time.perf_counter() - started,
    )
    return RetrievalVectors(query_ids=query_ids, queries=queries, documents=documents)


def score_retrieval(
    vectors: RetrievalVectors,
    dataset: BeirDataset,
    *,
    adapter: Adapter | None = None,
) -> dict[str, float]:
    """Search the corpus for every judged query and compute nDCG@10, recall@100, MRR@10.

    A ``query``-side adapter transforms only the queries; a ``both``-side adapter
    transforms queries and documents.
    """
    queries, documents = vectors.queries, vectors.documents
    if adapter is not None:
        queries = adapter.transform(queries)
        if adapter.side is AdapterSide.BOTH:
            documents = adapter.transform(documents)
    indices, _ = exact_top_k(queries, documents, RETRIEVAL_DEPTH)
    rankings = {
        qid: [dataset.corpus_ids[j] for j in row]
        for qid, row in zip(vectors.query_ids, indices, strict=True)
    }
    return mean_metrics(rankings, dataset.qrels)


def evaluate_retrieval(
    encoder: Encoder,
    dataset: BeirDataset,
    *,
    adapter: Adapter | None = None,
    cache: EmbeddingCache | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    show_progress: bool | None = None,
) -> dict[str, float]:
    """Encode and score a BEIR dataset; returns ``ndcg@10``, ``recall@100``, ``mrr@10``."""
    if adapter is not None:
        adapter.check_base(encoder.fingerprint)
    vectors = embed_retrieval(
        encoder, dataset, cache=cache, batch_size=batch_size, show_progress=show_progress
    )
    return score_retrieval(vectors, dataset, adapter=adapter)
