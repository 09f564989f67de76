"""Recovering a collection at open: a long log replay shows progress, a short one does not."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from embedding_core.progress import PROGRESS_ENV
from secure_index.index import durable_collection
from secure_index.index.hnsw_collection import CollectionSpec
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks

TENANT = "acme-consortium"
PROGRESS = "embedding_core.progress"


def _unit(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


@pytest.mark.parametrize(("threshold", "shown"), [(3, True), (4, False)])
def test_a_replay_of_many_log_records_reports_progress(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    threshold: int,
    shown: bool,
) -> None:
    # Prepare: three upserts only in the log (no snapshot), progress as log lines
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    x = _unit(9)
    with IndexStore(tmp_path / "idx", keks=keks, tenant=TENANT, background=False) as store:
        store.create_collection(CollectionSpec("c", 32))
        for batch in range(3):
            ids = [f"d{i}" for i in range(3 * batch, 3 * batch + 3)]
            store.upsert("c", ids, x[3 * batch : 3 * batch + 3], owner="n")
        store.close(snapshot=False)
    monkeypatch.setattr(durable_collection, "REPLAY_PROGRESS_MIN", threshold)
    monkeypatch.setenv(PROGRESS_ENV, "log")
    caplog.set_level(logging.INFO, logger=PROGRESS)
    # Execute
    reopened = IndexStore(tmp_path / "idx", keks=keks, tenant=TENANT, background=False)
    # Assert: every replayed document is back; progress only from the threshold on
    assert [h[0].doc_id for h in reopened.knn_query("c", x, k=1)] == [f"d{i}" for i in range(9)]
    reopened.close(snapshot=False)
    lines = [r.getMessage() for r in caplog.records if r.name == PROGRESS]
    if shown:
        assert lines[0] == "replay c log: started (3 records)"
        assert lines[-1].startswith("replay c log: done, 3 records")
    else:
        assert lines == []
