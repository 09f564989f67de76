"""The shared embedding kernel: frozen encoder, trainable adapter, cache, data, evaluation.

Every fedembed component (node, coordinator, index gateway, audits) embeds text through
this package, so they all agree on the model, the normalisation and the metrics.

The names below load on first use (PEP 562): the encoder and adapter import torch, which
commands that never embed should not wait for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from embedding_core.adapter import Adapter, AdapterKind, AdapterSide
    from embedding_core.cache import EmbeddingCache, default_cache_dir
    from embedding_core.encoder import (
        DEFAULT_ENCODER_BACKEND,
        DEFAULT_MODEL_ID,
        ENCODER_BACKENDS,
        Encoder,
        check_backend,
        default_model_path,
    )
    from embedding_core.errors import (
        AdapterError,
        DataFormatError,
        DatasetNotFoundError,
        FedembedError,
        ModelNotFoundError,
    )

_SUBMODULE: dict[str, str] = {
    "Adapter": "adapter",
    "AdapterError": "errors",
    "AdapterKind": "adapter",
    "AdapterSide": "adapter",
    "DEFAULT_ENCODER_BACKEND": "encoder",
    "DEFAULT_MODEL_ID": "encoder",
    "ENCODER_BACKENDS": "encoder",
    "DataFormatError": "errors",
    "DatasetNotFoundError": "errors",
    "EmbeddingCache": "cache",
    "Encoder": "encoder",
    "FedembedError": "errors",
    "ModelNotFoundError": "errors",
    "check_backend": "encoder",
    "default_cache_dir": "cache",
    "default_model_path": "encoder",
}


__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "DEFAULT_ENCODER_BACKEND",
    "DEFAULT_MODEL_ID",
    "ENCODER_BACKENDS",
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
    "check_backend",
    "default_cache_dir",
    "default_model_path",
]
