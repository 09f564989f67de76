from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.supercore.task_identity import TaskIdentity
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Hypothesis's per-example deadline and its too-slow health check are wall-clock limits a
# loaded machine trips; the suite's one time limit is pytest-timeout's (pyproject.toml).
settings.register_profile("fedembed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fedembed")

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


@pytest.fixture
def server_app_process() -> Iterator[None]:
    """This process as a Flower ServerApp process sees itself, for the test's duration.

    Flower stamps the task identity's run id on every new ``Message`` (a strategy's
    ``configure_train`` creates them); a ServerApp process sets that identity when it
    starts, as this does. It is cleared afterwards, as in a process that runs no task.
    """
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    yield
    for name in ("task_id", "run_id", "node_id"):
        setattr(TaskIdentity, name, None)
