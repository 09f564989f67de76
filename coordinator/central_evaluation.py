"""Central evaluation of the global adapter on the evaluator's held-out queries.

The test queries never go to nodes: the coordinator side scores each round's global
(query-side) adapter on a BEIR test split. The run config's ``eval-dataset`` names the
dataset folder under ``data-dir`` (``"none"`` skips the evaluation; rounds still run).

The base vectors are computed once per machine, not once per run: documents are encoded
in chunks through the :class:`~embedding_core.cache.EmbeddingCache` (``FEDEMBED_CACHE_DIR``
or the default cache folder), counted by a :class:`~embedding_core.progress.Progress` (a
bar on a terminal, a log line every 10 s otherwise), so a first run shows its progress and
a later run (or one interrupted half-way) reuses every chunk already stored. A round's
scoring runs in chunks of queries, with a progress of its own when the corpus is large
enough to take a while (:data:`SCORE_PROGRESS_PAIRS`). Each round's metrics are written to
the run folder as they are computed (:data:`CENTRAL_METRICS_FILE`), so a run's progress
can be followed while it runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, MetricRecord
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from coordinator.run_folder import CENTRAL_METRICS_FILE
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.atomic_file import atomic_write_json
from embedding_core.cache import EmbeddingCache
from embedding_core.data import BeirDataset, load_beir, resolve_dataset_dir
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, Encoder
from embedding_core.evaluation import RetrievalVectors, exact_top_k, mean_metrics
from embedding_core.evaluation.retrieval import RETRIEVAL_DEPTH
from embedding_core.progress import Progress
from federation.run_config import NO_EVALUATION

__all__ = [
    "CENTRAL_METRICS_FILE",
    "ENCODE_CHUNK",
    "SCORE_CHUNK",
    "SCORE_PROGRESS_PAIRS",
    "CentralEvaluator",
    "adapter_from_arrays",
    "cached_vectors",
    "score_in_chunks",
]

logger = logging.getLogger(__name__)

ENCODE_CHUNK = 512
"""Texts per cached chunk (the progress advances a chunk at a time)."""
SCORE_CHUNK = 256
"""Queries scored at once in a round's evaluation."""
SCORE_PROGRESS_PAIRS = 50_000_000
"""A round's scoring shows progress from this many (query, document) pairs on; below, it
takes well under a second and a progress would only add lines to every round."""


def adapter_from_arrays(arrays: ArrayRecord, *, kind: str, rank: int) -> Adapter:
    """Rebuild a query-side adapter from the global arrays."""
    state = arrays.to_torch_state_dict()
    in_dim = int(next(iter(state.values())).shape[-1])
    adapter = Adapter(in_dim, kind=kind, rank=rank or None, side=AdapterSide.QUERY)
    adapter.load_state_dict(state, strict=True)
    return adapter


def _encode_in_chunks(
    encoder: Encoder, texts: Sequence[str], cache: EmbeddingCache, *, what: str
) -> NDArray[np.float32]:
    """``texts`` encoded chunk by chunk through ``cache``, counted by a :class:`Progress`."""
    if not texts:
        return np.zeros((0, encoder.dimension), dtype=np.float32)
    parts: list[NDArray[np.float32]] = []
    with Progress(len(texts), what=what, unit="texts") as progress:
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunk = texts[start : start + ENCODE_CHUNK]
            parts.append(cache.get_or_encode(encoder, chunk, show_progress=False))
            progress.advance(len(chunk))
    return np.concatenate(parts, axis=0)


def cached_vectors(
    encoder: Encoder, dataset: BeirDataset, cache: EmbeddingCache
) -> RetrievalVectors:
    """Base vectors of ``dataset``'s corpus and judged queries, through ``cache``."""
    logger.info(
        "evaluate: dataset=%s documents=%d queries=%d (cached in %s)",
        dataset.name,
        dataset.num_docs,
        len(dataset.qrels),
        cache.directory,
    )
    step = f"evaluate: encode {dataset.name}"
    documents = _encode_in_chunks(encoder, dataset.corpus_texts, cache, what=f"{step} documents")
    query_ids = [qid for qid in dataset.qrels if qid in dataset.queries]
    queries = _encode_in_chunks(
        encoder, [dataset.queries[q] for q in query_ids], cache, what=f"{step} queries"
    )
    return RetrievalVectors(query_ids=query_ids, queries=queries, documents=documents)


def score_in_chunks(
    vectors: RetrievalVectors,
    dataset: BeirDataset,
    adapter: Adapter,
    *,
    what: str,
    show_progress: bool,
) -> dict[str, float]:
    """:func:`~embedding_core.evaluation.score_retrieval`'s metrics, queries in chunks.

    ``adapter`` transforms each chunk of queries (a ``both``-side one also the documents,
    once); a :class:`Progress` counts the queries scored when ``show_progress``.
    """
    documents = vectors.documents
    if adapter.side is AdapterSide.BOTH:
        documents = adapter.transform(documents)
    corpus_ids = dataset.corpus_ids
    rankings: dict[str, list[str]] = {}
    total = len(vectors.query_ids)
    mode = None if show_progress else "off"
    with Progress(total, what=what, unit="queries", mode=mode) as progress:
        for start in range(0, total, SCORE_CHUNK):
            queries = adapter.transform(vectors.queries[start : start + SCORE_CHUNK])
            indices, _ = exact_top_k(queries, documents, RETRIEVAL_DEPTH)
            chunk_ids = vectors.query_ids[start : start + SCORE_CHUNK]
            for qid, row in zip(chunk_ids, indices, strict=True):
                rankings[qid] = [corpus_ids[j] for j in row]
            progress.advance(len(chunk_ids))
    return mean_metrics(rankings, dataset.qrels)


class CentralEvaluator:
    """Callable ``(round, arrays) -> MetricRecord`` for ``Strategy.start(evaluate_fn=...)``.

    Args:
        data_dir: The data folder (``None``: ``FEDEMBED_DATA_DIR``).
        dataset: The BEIR dataset folder under ``data_dir``, or ``"none"`` (no evaluation:
            :attr:`enabled` is False and only the encoder is loaded, for the manifest).
        kind: The adapter kind.
        rank: The adapter rank.
        cache_dir: The embedding cache (``None``: ``FEDEMBED_CACHE_DIR`` or the default).
        out_dir: The run folder; each round's metrics are written there (``None``: not).
        score_progress_pairs: A round's scoring shows progress from this many (query,
            document) pairs on (0: always; default :data:`SCORE_PROGRESS_PAIRS`).
        encoder_backend: How texts are encoded (the run config's ``encoder-backend``, the
            nodes' too): ``torch``, ``onnx`` or ``onnx-int8``.
    """

    def __init__(
        self,
        *,
        data_dir: str | Path | None,
        dataset: str,
        kind: str,
        rank: int,
        cache_dir: str | Path | None = None,
        out_dir: str | Path | None = None,
        score_progress_pairs: int = SCORE_PROGRESS_PAIRS,
        encoder_backend: str = DEFAULT_ENCODER_BACKEND,
    ) -> None:
        self.encoder = Encoder.load(backend=encoder_backend)
        self.kind, self.rank = kind, rank
        self.score_progress_pairs = score_progress_pairs
        self.history: dict[int, dict[str, float]] = {}
        self.metrics_path = Path(out_dir) / CENTRAL_METRICS_FILE if out_dir else None
        self.enabled = dataset != NO_EVALUATION
        self.dataset: BeirDataset | None = None
        self.vectors: RetrievalVectors | None = None
        if not self.enabled:
            logger.info("evaluate: eval-dataset=none, no central evaluation")
            return
        folder = resolve_dataset_dir(data_dir, dataset, marker="corpus.jsonl")
        self.dataset = load_beir(folder, split="test", name=dataset)
        self.vectors = cached_vectors(self.encoder, self.dataset, EmbeddingCache(cache_dir))

    def __call__(self, server_round: int, arrays: ArrayRecord) -> MetricRecord:
        """Score the adapter held in ``arrays`` (and write the run's metrics so far)."""
        if self.dataset is None or self.vectors is None:
            return MetricRecord()
        started = time.perf_counter()
        adapter = adapter_from_arrays(arrays, kind=self.kind, rank=self.rank)
        pairs = len(self.vectors.query_ids) * len(self.vectors.documents)
        # One BLAS thread: in the simulation engine this runs on the ServerApp's thread
        # beside Ray, and twice (2026-12-07) numpy's OpenBLAS spun there for minutes in
        # `inner_thread`, its caller waiting for a worker thread that never ran. A
        # single-threaded product never hands work to OpenBLAS's threads; SciFact's test
        # claims against its corpus take well under a second either way.
        with threadpool_limits(limits=1, user_api="blas"):
            metrics = score_in_chunks(
                self.vectors,
                self.dataset,
                adapter,
                what=f"evaluate: round {server_round} on {self.dataset.name}",
                show_progress=pairs >= self.score_progress_pairs,
            )
        self.history[server_round] = metrics
        logger.info(
            "evaluate: round=%d ndcg@10=%.4f (%.1f s)",
            server_round,
            metrics["ndcg@10"],
            time.perf_counter() - started,
        )
        self.save()
        return MetricRecord(metrics)  # type: ignore[arg-type]

    def save(self) -> None:
        """Write the metrics of every round evaluated so far to the run folder."""
        if self.metrics_path is None:
            return
        rounds = {str(r): m for r, m in sorted(self.history.items())}
        dataset = self.dataset.name if self.dataset is not None else NO_EVALUATION
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.metrics_path, {"dataset": dataset, "rounds": rounds})
