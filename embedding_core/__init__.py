"""The shared embedding kernel: frozen encoder, trainable adapter, cache, data, evaluation.

Every fedembed component (node, coordinator, index gateway, audits) embeds text through
this package, so they all agree on the model, the normalisation and the metrics.
"""

from embedding_core.adapter import Adapter, AdapterKind, AdapterSide
from embedding_core.cache import EmbeddingCache, default_cache_dir
from embedding_core.encoder import DEFAULT_MODEL_ID, Encoder, default_model_path
from embedding_core.errors import (
    AdapterError,
    DataFormatError,
    DatasetNotFoundError,
    FedembedError,
    ModelNotFoundError,
)

__all__ = [
    "DEFAULT_MODEL_ID",
    "Adapter",
    "AdapterError",
    "AdapterKind",
    "AdapterSide",
    "DataFormatError",
    "DatasetNotFoundError",
    "EmbeddingCache",
    "Encoder",
    "FedembedError",
    "ModelNotFoundError",
    "default_cache_dir",
    "default_model_path",
]
