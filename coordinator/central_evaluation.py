"""Central evaluation of the global adapter on the evaluator's held-out queries.

The test queries never go to nodes: the coordinator side scores each round's global
(query-side) adapter on a BEIR test split with base vectors computed once (cached).
"""

from __future__ import annotations

import logging
from pathlib import Path

from flwr.app import ArrayRecord, MetricRecord

from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.cache import EmbeddingCache
from embedding_core.data import load_beir, resolve_dataset_dir
from embedding_core.encoder import Encoder
from embedding_core.evaluation import embed_retrieval, score_retrieval

__all__ = ["CentralEvaluator", "adapter_from_arrays"]

logger = logging.getLogger(__name__)


def adapter_from_arrays(arrays: ArrayRecord, *, kind: str, rank: int) -> Adapter:
    """Rebuild a query-side adapter from the global arrays."""
    state = arrays.to_torch_state_dict()
    in_dim = int(next(iter(state.values())).shape[-1])
    adapter = Adapter(in_dim, kind=kind, rank=rank or None, side=AdapterSide.QUERY)
    adapter.load_state_dict(state, strict=True)
    return adapter


class CentralEvaluator:
    """Callable ``(round, arrays) -> MetricRecord`` for ``Strategy.start(evaluate_fn=...)``."""

    def __init__(
        self,
        *,
        data_dir: str | Path | None,
        dataset: str,
        kind: str,
        rank: int,
        cache_dir: str | Path | None = None,
    ) -> None:
        folder = resolve_dataset_dir(data_dir, dataset, marker="corpus.jsonl")
        self.dataset = load_beir(folder, split="test", name=dataset)
        self.encoder = Encoder.load()
        self.vectors = embed_retrieval(self.encoder, self.dataset, cache=EmbeddingCache(cache_dir))
        self.kind, self.rank = kind, rank
        self.history: dict[int, dict[str, float]] = {}

    def __call__(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        """Score the adapter held in ``arrays``."""
        adapter = adapter_from_arrays(arrays, kind=self.kind, rank=self.rank)
        metrics = score_retrieval(self.vectors, self.dataset, adapter=adapter)
        self.history[server_round] = metrics
        logger.info("evaluate: round=%d ndcg@10=%.4f", server_round, metrics["ndcg@10"])
        return MetricRecord(metrics)  # type: ignore[arg-type]
