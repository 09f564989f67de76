"""Central evaluation: its encoding and scoring report progress; scoring in chunks is exact."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from flwr.app import ArrayRecord
from threadpoolctl import threadpool_info

from coordinator import central_evaluation
from coordinator.central_evaluation import CentralEvaluator, adapter_from_arrays, score_in_chunks
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.evaluation import score_retrieval
from embedding_core.progress import PROGRESS_ENV

DOCS = [
    ("d1", "Aspirin lowers the risk of heart attacks."),
    ("d2", "Vitamin D deficiency is common in winter."),
    ("d3", "Exercise improves insulin sensitivity."),
    ("d4", "Smoking causes lung cancer."),
    ("d5", "Sleep loss impairs memory consolidation."),
    ("d6", "Statins reduce cholesterol in the blood."),
    ("d7", "Green tea contains antioxidants."),
]
QUERIES = [
    ("q1", "does aspirin prevent heart attacks"),
    ("q2", "smoking and cancer"),
    ("q3", "cholesterol lowering drugs"),
    ("q4", "sleep and memory"),
]
JUDGED = [("q1", "d1"), ("q2", "d4"), ("q3", "d6"), ("q4", "d5")]


def _write_beir(root: Path) -> Path:
    folder = root / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in DOCS)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES)
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in JUDGED)
    )
    return root


def _perturbed(adapter: Adapter, seed: int) -> Adapter:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in adapter.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return adapter


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


@pytest.fixture
def evaluator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> CentralEvaluator:
    monkeypatch.setenv(PROGRESS_ENV, "log")
    caplog.set_level(logging.INFO)
    return CentralEvaluator(
        data_dir=_write_beir(tmp_path / "data"),
        dataset="tiny",
        kind="residual_linear",
        rank=0,
        cache_dir=tmp_path / "cache",
        score_progress_pairs=0,
    )


def test_encoding_the_evaluation_set_reports_its_progress_and_no_text(
    evaluator: CentralEvaluator, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: the evaluator was built (and encoded its set) by the fixture.
    messages = [r.getMessage() for r in caplog.get_records("setup")]

    # Assert: a start and an end line per part, with counts only.
    assert "evaluate: encode tiny documents: started (7 texts)" in messages
    assert any(m.startswith("evaluate: encode tiny documents: done, 7 texts") for m in messages)
    assert "evaluate: encode tiny queries: started (4 texts)" in messages
    assert any(m.startswith("evaluate: encode tiny queries: done, 4 texts") for m in messages)
    texts = [t for _, t in DOCS + QUERIES]
    assert not any(text in m for m in messages for text in texts)


def test_a_round_scored_in_chunks_equals_score_retrieval_and_reports_its_progress(
    evaluator: CentralEvaluator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: a trained-looking query adapter, scored three queries at a time.
    monkeypatch.setattr(central_evaluation, "SCORE_CHUNK", 3)
    adapter = _perturbed(Adapter(evaluator.encoder.dimension, side=AdapterSide.QUERY), seed=1)
    arrays = ArrayRecord(adapter.state_dict())
    assert evaluator.vectors is not None
    assert evaluator.dataset is not None
    expected = score_retrieval(
        evaluator.vectors,
        evaluator.dataset,
        adapter=adapter_from_arrays(arrays, kind="residual_linear", rank=0),
    )
    caplog.clear()

    # Execute
    metrics = evaluator(3, arrays)

    # Assert
    assert dict(metrics) == pytest.approx(expected)
    messages = _messages(caplog)
    assert "evaluate: round 3 on tiny: started (4 queries)" in messages
    assert any(m.startswith("evaluate: round 3 on tiny: done, 4 queries") for m in messages)
    assert any(m.startswith("evaluate: round=3 ndcg@10=") for m in messages)


def test_a_both_sided_adapter_scores_as_score_retrieval_does(
    evaluator: CentralEvaluator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    monkeypatch.setattr(central_evaluation, "SCORE_CHUNK", 3)
    adapter = _perturbed(Adapter(evaluator.encoder.dimension, side=AdapterSide.BOTH), seed=2)
    assert evaluator.vectors is not None
    assert evaluator.dataset is not None

    # Execute
    metrics = score_in_chunks(
        evaluator.vectors, evaluator.dataset, adapter, what="score", show_progress=False
    )

    # Assert
    assert metrics == pytest.approx(
        score_retrieval(evaluator.vectors, evaluator.dataset, adapter=adapter)
    )


def test_a_small_round_is_scored_without_progress_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: the default threshold; 4 queries x 7 documents is far below it.
    monkeypatch.setenv(PROGRESS_ENV, "log")
    evaluator = CentralEvaluator(
        data_dir=_write_beir(tmp_path / "data"),
        dataset="tiny",
        kind="residual_linear",
        rank=0,
        cache_dir=tmp_path / "cache",
    )
    arrays = ArrayRecord(Adapter(evaluator.encoder.dimension, side=AdapterSide.QUERY).state_dict())
    caplog.set_level(logging.INFO)

    # Execute
    evaluator(1, arrays)

    # Assert
    messages = _messages(caplog)
    assert any(m.startswith("evaluate: round=1 ndcg@10=") for m in messages)
    assert not any(m.startswith("evaluate: round 1 on tiny") for m in messages)


def test_no_evaluation_set_encodes_nothing_and_scores_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    caplog.set_level(logging.INFO)

    # Execute
    evaluator = CentralEvaluator(
        data_dir=tmp_path, dataset="none", kind="residual_linear", rank=0, out_dir=tmp_path
    )
    arrays = ArrayRecord(Adapter(evaluator.encoder.dimension, side=AdapterSide.QUERY).state_dict())
    metrics = evaluator(1, arrays)

    # Assert
    assert not evaluator.enabled
    assert dict(metrics) == {}
    messages = _messages(caplog)
    assert "evaluate: eval-dataset=none, no central evaluation" in messages
    assert not any(m.startswith("evaluate: encode") for m in messages)


def test_a_round_is_scored_on_one_blas_thread(
    evaluator: CentralEvaluator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: record the BLAS libraries' thread counts while the round is scored (the
    # simulation engine runs this on the ServerApp's thread, where a threaded OpenBLAS
    # was seen to spin for minutes).
    seen: list[int] = []
    scorer = central_evaluation.score_in_chunks

    def recording(*args: Any, **kwargs: Any) -> dict[str, float]:
        seen.extend(int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas")
        return scorer(*args, **kwargs)

    monkeypatch.setattr(central_evaluation, "score_in_chunks", recording)
    adapter = Adapter(evaluator.encoder.dimension, side=AdapterSide.QUERY)
    before = [int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]

    # Execute
    evaluator(1, ArrayRecord(adapter.state_dict()))

    # Assert: every BLAS library numpy loaded runs on one thread, and only while scoring.
    assert seen
    assert set(seen) == {1}
    after = [int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    assert after == before
