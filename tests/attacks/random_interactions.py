"""Random interaction pools for membership tests: only memorisation helps (the worst case)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dp_training import InteractionSet


def random_interactions(records: int, docs: int, dim: int, seed: int) -> InteractionSet:
    """Random unit queries citing random unit documents."""
    rng = np.random.default_rng(seed)

    def unit(n: int) -> NDArray[np.float32]:
        v = rng.normal(size=(n, dim)).astype(np.float32)
        return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)

    return InteractionSet(
        query_vectors=unit(records),
        positive_index=rng.integers(0, docs, size=records).astype(np.int64),
        doc_vectors=unit(docs),
    )
