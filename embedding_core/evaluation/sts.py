"""Semantic textual similarity evaluation (Spearman of cosine vs gold scores).

As in MTEB's STS tasks: each pair's cosine similarity is compared with its gold score
by Spearman rank correlation. An adapter, when given, is applied to both sentences
(STS is symmetric: both sides are the same kind of text).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from embedding_core.adapter import Adapter
from embedding_core.cache import EmbeddingCache
from embedding_core.data import StsPair
from embedding_core.encoder import DEFAULT_BATCH_SIZE, Encoder

__all__ = ["evaluate_sts"]

logger = logging.getLogger(__name__)


def evaluate_sts(
    encoder: Encoder,
    pairs: Sequence[StsPair],
    *,
    adapter: Adapter | None = None,
    cache: EmbeddingCache | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    show_progress: bool | None = None,
    what: str = "encode sts pairs",
) -> dict[str, float]:
    """Return ``{"spearman": rho}`` (a fraction) for the pairs.

    Both sentences of every pair are encoded in one call (through ``cache`` when given),
    with progress reported as ``what`` for inputs of 1,000 texts or more.
    """
    if len(pairs) < 2:
        raise ValueError(f"STS evaluation needs at least 2 pairs, got {len(pairs)}")
    if adapter is not None:
        adapter.check_base(encoder.fingerprint)
    texts = [p.sentence1 for p in pairs] + [p.sentence2 for p in pairs]
    if cache is not None:
        vectors = cache.get_or_encode(
            encoder, texts, batch_size=batch_size, show_progress=show_progress, what=what
        )
    else:
        vectors = encoder.encode(
            texts, batch_size=batch_size, show_progress=show_progress, what=what
        )
    if adapter is not None:
        vectors = adapter.transform(vectors)
    left, right = vectors[: len(pairs)], vectors[len(pairs) :]
    cosine = np.sum(left * right, axis=1) / (
        np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    )
    gold = np.array([p.score for p in pairs], dtype=np.float64)
    rho = float(spearmanr(cosine, gold).statistic)
    logger.info("sts: pairs=%d spearman=%.4f", len(pairs), rho)
    return {"spearman": rho}
