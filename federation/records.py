"""Record packing shared by the node and the coordinator.

A model travels as an :class:`~flwr.app.ArrayRecord`; updates are summed as one flat
vector. :func:`flatten` and :func:`unflatten` are inverse (up to float32) for a fixed
layout, so both sides agree on the order of the parameters. A CKKS update travels as a
ConfigRecord under :attr:`~federation.wire.ContentKey.CKKS_UPDATE` whose fields are
named by :class:`CkksField`.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from flwr.app import Array, ArrayRecord

from embedding_core.errors import FedembedError

__all__ = ["CkksField", "flatten", "unflatten"]


class CkksField(StrEnum):
    """Fields of the ConfigRecord that carries a CKKS-encrypted vector."""

    CHUNKS = "chunks"
    """The serialised ciphertexts, one per chunk of slots."""
    LENGTH = "length"
    """How many values the chunks hold (the flat model's length)."""
    SUM = "sum"
    """The serialised CKKS sum the coordinator asks a node to decrypt."""


def flatten(arrays: ArrayRecord) -> np.ndarray:
    """Concatenate an ArrayRecord's arrays (in key order) into one float64 vector."""
    return np.concatenate(
        [np.asarray(a, dtype=np.float64).ravel() for a in arrays.to_numpy_ndarrays()]
    )


def unflatten(vector: np.ndarray, like: ArrayRecord) -> ArrayRecord:
    """Split a flat vector back into arrays shaped like ``like`` (float32)."""
    out: dict[str, Array] = {}
    offset = 0
    for key, ref in zip(like.keys(), like.to_numpy_ndarrays(), strict=True):
        size = ref.size
        if offset + size > vector.size:
            offset += size
            break
        out[key] = Array(vector[offset : offset + size].reshape(ref.shape).astype(np.float32))
        offset += size
    if offset != vector.size:
        raise FedembedError(
            f"the aggregate has {vector.size} values, the model has "
            f"{sum(a.size for a in like.to_numpy_ndarrays())}",
            expected="an aggregate of the round's model layout",
            fix="check that every node trains the adapter kind and rank the round asked for",
        )
    return ArrayRecord(out)
