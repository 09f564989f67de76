"""Reading a snapshot generation: the graph decrypts beside the table, a damaged file
stops the open with one clear error and no thread left behind, a large open shows progress."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from embedding_core.progress import PROGRESS_ENV
from secure_index.errors import IntegrityError
from secure_index.index import snapshot_files
from secure_index.index.hnsw_collection import CollectionSpec, Metric
from secure_index.index.index_store import IndexStore
from secure_index.index.snapshot_files import latest_generation, read_generation
from secure_index.sealing import KeyFileKeks

TENANT = "acme-consortium"
PROGRESS = "embedding_core.progress"


def _unit(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, KeyFileKeks, np.ndarray]:
    """A collection "c" of 300 vectors with one snapshot, and its key file."""
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    x = _unit(300)
    with IndexStore(tmp_path / "idx", keks=keks, tenant=TENANT, background=False) as store:
        store.create_collection(CollectionSpec("c", 32, metric=Metric.INNER_PRODUCT))
        store.upsert("c", [f"d{i}" for i in range(300)], x, owner="node-a")
        store.snapshot("c")
    return tmp_path / "idx" / "collections" / "c", keks, x


def _progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == PROGRESS]


def test_a_generation_loads_its_graph_and_table(
    folder: tuple[Path, KeyFileKeks, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    directory, keks, x = folder
    caplog.set_level(logging.INFO, logger=PROGRESS)
    # Execute
    collection, _folded = read_generation(
        directory, latest_generation(directory), tenant=TENANT, keks=keks
    )
    # Assert: every vector finds itself, with its owner; a small open shows no progress
    hits = collection.knn_query(x, k=1)
    assert [h[0].doc_id for h in hits] == [f"d{i}" for i in range(300)]
    assert {h[0].owner for h in hits} == {"node-a"}
    assert _progress_lines(caplog) == []


def test_a_large_open_reports_progress(
    folder: tuple[Path, KeyFileKeks, np.ndarray],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: every open counts as large; no terminal, so log lines
    directory, keks, x = folder
    monkeypatch.setattr(snapshot_files, "LARGE_OPEN_BYTES", 0)
    monkeypatch.setenv(PROGRESS_ENV, "log")
    caplog.set_level(logging.INFO, logger=PROGRESS)
    # Execute
    collection, _folded = read_generation(
        directory, latest_generation(directory), tenant=TENANT, keks=keks
    )
    # Assert
    lines = _progress_lines(caplog)
    assert lines[0].startswith("open c index: started (")
    assert lines[-1].startswith("open c index: done")
    assert collection.knn_query(x[7], k=1)[0][0].doc_id == "d7"


@pytest.mark.parametrize("kind", ["graph", "table"])
def test_a_damaged_file_stops_the_open_and_leaves_no_thread(
    folder: tuple[Path, KeyFileKeks, np.ndarray], kind: str
) -> None:
    # Prepare: one flipped byte in the body of the graph or the table
    directory, keks, _x = folder
    target = sorted(directory.glob(f"{kind}-*.sealed"))[-1]
    damaged = bytearray(target.read_bytes())
    damaged[-40] ^= 1
    target.write_bytes(bytes(damaged))
    # Execute
    with pytest.raises(IntegrityError) as caught:
        read_generation(directory, latest_generation(directory), tenant=TENANT, keks=keks)
    # Assert: the error names the damaged file; the graph's decrypting thread has ended
    assert target.name in str(caught.value)
    assert not [t for t in threading.enumerate() if t.name.startswith("open-graph")]
