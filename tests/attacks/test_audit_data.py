"""The audit's smaller SciFact corpus keeps every judged document."""

from __future__ import annotations

from attacks.audit_data import corpus_subset
from embedding_core.data.beir import BeirDataset


def _dataset(split: str, qrels: dict[str, dict[str, int]]) -> BeirDataset:
    ids = [f"d{i}" for i in range(100)]
    return BeirDataset(
        name="toy",
        corpus_ids=ids,
        corpus_texts=[f"text {i}" for i in ids],
        queries={q: q for q in qrels},
        qrels=qrels,
        split=split,
    )


def test_subset_keeps_judged_documents_and_fills_to_size_in_corpus_order() -> None:
    # Prepare
    test = _dataset("test", {"q1": {"d5": 1}, "q2": {"d90": 1}})
    train = _dataset("train", {"q3": {"d42": 1, "d7": 1}})
    # Execute
    subset = corpus_subset(test, train, 20, seed=0)
    again = corpus_subset(test, train, 20, seed=0)
    # Assert
    assert len(subset.corpus_ids) == 20
    assert {"d5", "d90", "d42", "d7"} <= set(subset.corpus_ids)
    assert subset.corpus_ids == sorted(subset.corpus_ids, key=lambda d: int(d[1:]))
    assert subset.corpus_texts == [f"text {d}" for d in subset.corpus_ids]
    assert subset.qrels == test.qrels
    assert again.corpus_ids == subset.corpus_ids


def test_a_size_below_the_judged_count_keeps_only_judged_documents() -> None:
    test = _dataset("test", {"q1": {"d5": 1, "d6": 1}})
    train = _dataset("train", {"q3": {"d42": 1}})
    assert corpus_subset(test, train, 1, seed=0).corpus_ids == ["d5", "d6", "d42"]
