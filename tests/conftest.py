from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The reference datasets: $FEDEMBED_DATA_DIR, else ../shared/data beside the repo.

    Fails loudly (never skips) when absent: CI must run against the real data.
    """
    env = os.environ.get("FEDEMBED_DATA_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not (path / "scifact" / "corpus.jsonl").is_file():
        pytest.fail(
            f"reference data not found at {path}; set FEDEMBED_DATA_DIR to the shared data "
            "folder (the one holding scifact/ and stsb/)"
        )
    return path.resolve()


@pytest.fixture(scope="session")
def embedding_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the whole test session, so SciFact is encoded once."""
    return tmp_path_factory.mktemp("embedding-cache")
