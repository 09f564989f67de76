from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embedding_core.encoder import Encoder


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The default (bundled) all-MiniLM-L6-v2 encoder, loaded once per session."""
    return Encoder.load(backend="torch")


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export cache per session, shared by every test that exports."""
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="session")
def onnx_encoder(onnx_dir: Path) -> Encoder:
    """The bundled model on the ``onnx`` backend (exported on first encode, once)."""
    return Encoder.load(backend="onnx", onnx_dir=onnx_dir)


@pytest.fixture(scope="session")
def int8_encoder(onnx_dir: Path) -> Encoder:
    """The bundled model on the ``onnx-int8`` backend (quantised once per session)."""
    return Encoder.load(backend="onnx-int8", onnx_dir=onnx_dir)
