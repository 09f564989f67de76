"""Encode texts with ONNX Runtime: tokenisation, the exported transformer, pooling.

The ``onnx`` and ``onnx-int8`` backends of :class:`~embedding_core.encoder.Encoder`.
Tokenisation uses the model's own ``tokenizer.json`` (the Hugging Face ``tokenizers``
library, as sentence-transformers' fast tokenizer: truncation to ``max_seq_length``,
padding to the longest text of a batch); pooling and normalisation follow the model's
``modules.json`` and Pooling config, as sentence-transformers' modules compute them.

Batches are sized by tokens, not texts: texts are sorted by their token count and a
batch holds at most ``$FEDEMBED_ONNX_BATCH_TOKENS`` (default 1,024) padded tokens and
at most ``batch_size`` texts. ONNX Runtime's attention materialises a
batch x heads x length x length score tensor; at 32 documents of 256 tokens that is
100 MB a layer and the encode runs at memory speed (SciFact documents: 2.4 s for 128
at 32 a batch against 1.5 s at 4 a batch, int8, 2 threads). Padding is masked, so the
batching never changes a vector beyond float rounding.
Nothing here imports torch: with a warm export cache, a process that encodes through
ONNX never loads it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from embedding_core.errors import ModelNotFoundError
from embedding_core.onnx_export import exported_model

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Encoding, Tokenizer

__all__ = [
    "DEFAULT_BATCH_TOKENS",
    "ONNX_BATCH_TOKENS_ENV",
    "ONNX_THREADS_ENV",
    "POOLING_MODES",
    "OnnxEncoder",
    "batch_tokens",
    "onnx_threads",
]

logger = logging.getLogger(__name__)

ONNX_THREADS_ENV = "FEDEMBED_ONNX_THREADS"
ONNX_BATCH_TOKENS_ENV = "FEDEMBED_ONNX_BATCH_TOKENS"
DEFAULT_BATCH_TOKENS = 1024
POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len_tokens")
_EPS_COUNT = 1e-9  # sentence-transformers' clamp on the token count
_EPS_NORM = 1e-12  # torch.nn.functional.normalize's clamp on the norm


def onnx_threads() -> int:
    """ONNX Runtime's intra-op threads: ``$FEDEMBED_ONNX_THREADS``, else the usable CPUs."""
    env = os.environ.get(ONNX_THREADS_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def batch_tokens() -> int:
    """Padded tokens per ONNX batch: ``$FEDEMBED_ONNX_BATCH_TOKENS``, else 1,024."""
    env = os.environ.get(ONNX_BATCH_TOKENS_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return DEFAULT_BATCH_TOKENS


def _pooling_mode(config: dict[str, Any]) -> str:
    named = config.get("pooling_mode")
    if isinstance(named, str):  # newer configs name the mode
        modes = [named]
    else:
        modes = [
            k.removeprefix("pooling_mode_")
            for k, v in config.items()
            if k.startswith("pooling_mode_") and v is True
        ]
    modes = [m.removesuffix("_token").removesuffix("_tokens") for m in modes]
    modes = ["mean_sqrt_len_tokens" if m == "mean_sqrt_len" else m for m in modes]
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise ModelNotFoundError(
            f"the model's pooling {modes or 'none'} is not supported by the ONNX backends",
            expected=f"exactly one pooling mode of {', '.join(POOLING_MODES)}",
            fix="use --encoder-backend torch for this model",
        )
    return modes[0]


def _load_tokenizer(model_dir: Path, max_seq_length: int) -> tuple[Tokenizer, int]:
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFoundError(
            f"{model_dir} has no tokenizer.json, which the ONNX backends read",
            expected="a model folder with a fast-tokenizer file tokenizer.json",
            fix="use --encoder-backend torch for this model",
        )
    tokenizer = Tokenizer.from_file(str(path))
    settings: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        settings = json.loads((model_dir / "tokenizer_config.json").read_text("utf-8"))
    pad_token = str(settings.get("pad_token") or "[PAD]")
    pad_id = tokenizer.token_to_id(pad_token)
    tokenizer.enable_truncation(max_length=max_seq_length, strategy="longest_first")
    tokenizer.no_padding()  # batches are padded here, after sorting by token count
    return tokenizer, pad_id if pad_id is not None else 0


class OnnxEncoder:
    """An ONNX Runtime session over an exported sentence-transformers model."""

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        tokenizer: Tokenizer,
        *,
        pad_id: int,
        inputs: list[str],
        pooling: str,
        normalize_module: bool,
        lower_case: bool,
    ) -> None:
        self._session = session
        self.tokenizer = tokenizer
        self._pad_id = pad_id
        self._inputs = inputs
        self.pooling = pooling
        self._normalize_module = normalize_module
        self._lower_case = lower_case

    @classmethod
    def open(
        cls,
        model_dir: Path,
        *,
        quantized: bool,
        fingerprint: str,
        max_seq_length: int,
        pooling: dict[str, Any],
        normalize_module: bool,
        cache_dir: Path,
        threads: int | None = None,
    ) -> OnnxEncoder:
        """Export (once, cached) and open the model on ONNX Runtime's CPU provider."""
        import onnxruntime

        mode = _pooling_mode(pooling)
        path, inputs = exported_model(
            model_dir, fingerprint=fingerprint, quantized=quantized, cache_dir=cache_dir
        )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads if threads is not None else onnx_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        settings: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            settings = json.loads((model_dir / "sentence_bert_config.json").read_text("utf-8"))
        logger.info(
            "onnx: session %s threads=%d pooling=%s",
            path.name,
            options.intra_op_num_threads,
            mode,
        )
        tokenizer, pad_id = _load_tokenizer(model_dir, max_seq_length)
        return cls(
            session,
            tokenizer,
            pad_id=pad_id,
            inputs=inputs,
            pooling=mode,
            normalize_module=normalize_module,
            lower_case=bool(settings.get("do_lower_case", False)),
        )

    def encode(
        self, texts: Sequence[str], *, batch_size: int, normalize: bool
    ) -> NDArray[np.float32]:
        """Encode ``texts`` (order kept) into float32 sentence vectors.

        A batch holds at most ``batch_size`` texts and :func:`batch_tokens` padded tokens
        (one text longer than that budget still makes a batch of its own).
        """
        if self._lower_case:
            texts = [text.lower() for text in texts]
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        budget = batch_tokens()
        out: NDArray[np.float32] | None = None
        start = 0
        while start < len(order):
            longest = max(int(lengths[order[start]]), 1)
            rows = order[start : start + max(1, min(batch_size, budget // longest))]
            start += len(rows)
            vectors = self._encode_batch([encodings[i] for i in rows], longest)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        if out is None:
            raise ValueError("no texts to encode")
        if normalize or self._normalize_module:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, _EPS_NORM)
        return out

    def _encode_batch(self, encodings: list[Encoding], width: int) -> NDArray[np.float32]:
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
            types[row, :n] = encoding.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (tokens,) = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})
        return self._pool(np.asarray(tokens, dtype=np.float32), mask.astype(np.float32))

    def _pool(self, tokens: NDArray[np.float32], mask: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.pooling == "cls":
            return np.ascontiguousarray(tokens[:, 0, :])
        if self.pooling == "max":
            masked = np.where(mask[:, :, None] > 0, tokens, np.float32(-1e9))
            return np.asarray(masked.max(axis=1), dtype=np.float32)
        summed = np.einsum("bsd,bs->bd", tokens, mask)
        counts = np.maximum(mask.sum(axis=1, keepdims=True), _EPS_COUNT)
        if self.pooling == "mean_sqrt_len_tokens":
            counts = np.sqrt(counts)
        return np.asarray(summed / counts, dtype=np.float32)
