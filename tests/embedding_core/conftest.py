from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embedding_core.encoder import Encoder


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The default (bundled) all-MiniLM-L6-v2 encoder, loaded once per session."""
    return Encoder.load()
