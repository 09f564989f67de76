from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval

from embedding_core.evaluation import exact_top_k, mean_metrics, mrr_at_k, ndcg_at_k, recall_at_k


def test_hand_computed_values() -> None:
    ranked = ["d3", "d1", "d9", "d2"]
    relevance = {"d1": 1, "d2": 1, "d7": 1}

    assert ndcg_at_k(ranked, relevance, 10) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    )
    assert recall_at_k(ranked, relevance, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevance, 100) == pytest.approx(2 / 3)
    assert mrr_at_k(ranked, relevance, 10) == pytest.approx(0.5)
    assert mrr_at_k(ranked, relevance, 1) == 0.0


def test_perfect_ranking_scores_one() -> None:
    assert ndcg_at_k(["a", "b"], {"a": 2, "b": 1}, 10) == pytest.approx(1.0)


def test_graded_relevance_uses_linear_gain() -> None:
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx(
        (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    )


def test_agrees_with_trec_eval_on_random_runs() -> None:
    rng = np.random.default_rng(7)
    docs = [f"d{i}" for i in range(300)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    rankings: dict[str, list[str]] = {}
    for q in range(60):
        qid = f"q{q}"
        relevant = rng.choice(docs, size=int(rng.integers(1, 6)), replace=False)
        qrels[qid] = {d: int(rng.integers(1, 3)) for d in relevant}
        scores = rng.permutation(len(docs))[:150].astype(float)
        order = np.argsort(-scores)
        picked = [docs[i] for i in order]
        rankings[qid] = picked
        # distinct scores in ranking order so trec_eval's tie-breaking cannot differ
        run[qid] = {d: float(len(picked) - r) for r, d in enumerate(picked)}

    ours = mean_metrics(rankings, qrels, ndcg_k=(10,), recall_k=(100,), mrr_k=(10,))
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    ref = evaluator.evaluate(run)

    assert ours["ndcg@10"] == pytest.approx(
        np.mean([r["ndcg_cut_10"] for r in ref.values()]), abs=1e-9
    )
    assert ours["recall@100"] == pytest.approx(
        np.mean([r["recall_100"] for r in ref.values()]), abs=1e-9
    )


def test_mean_metrics_requires_rankings_for_judged_queries() -> None:
    with pytest.raises(ValueError, match="no ranking"):
        mean_metrics({}, {"q": {"d": 1}})


def test_exact_top_k_matches_full_sort() -> None:
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(1000, 16)).astype(np.float32)
    queries = rng.normal(size=(300, 16)).astype(np.float32)

    indices, scores = exact_top_k(queries, docs, 10)

    full = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    np.testing.assert_array_equal(indices, full)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_exact_top_k_caps_k_at_corpus_size() -> None:
    indices, _ = exact_top_k(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 10)

    assert indices.shape == (3, 3)
    np.testing.assert_array_equal(indices[:, 0], [0, 1, 2])
