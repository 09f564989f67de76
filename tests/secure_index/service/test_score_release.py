"""Score release: rank only by default, a coarse grid, or exact; always in rank order."""

from __future__ import annotations

import numpy as np
import pytest

from secure_index.index.collection_spec import Hit
from secure_index.service.score_release import (
    COARSE_SCORE_STEP,
    ReleasedHit,
    ScoreRelease,
    release_hits,
)


def _hits(scores: list[float]) -> list[Hit]:
    return [Hit.of(f"d{i}", "node-a", s) for i, s in enumerate(scores)]


def test_rank_release_gives_ranks_in_order_and_no_scores() -> None:
    # Prepare: hits out of order, as a merge of blocks might give them
    hits = _hits([0.2, 0.9, -0.3, 0.5])
    # Execute
    released = release_hits(hits, ScoreRelease.RANK)
    # Assert
    assert released == [
        ReleasedHit("d1", "node-a", 1, None),
        ReleasedHit("d3", "node-a", 2, None),
        ReleasedHit("d0", "node-a", 3, None),
        ReleasedHit("d2", "node-a", 4, None),
    ]


def test_coarse_release_rounds_to_the_grid_and_keeps_the_exact_order() -> None:
    # Prepare: seeded scores, two of them closer than a grid step
    scores = [0.8123, 0.8101, 0.4449, -0.0260, -0.61, 0.0249]
    # Execute
    released = release_hits(_hits(scores), ScoreRelease.COARSE)
    # Assert
    assert [h.doc_id for h in released] == ["d0", "d1", "d2", "d5", "d3", "d4"]
    assert [h.rank for h in released] == [1, 2, 3, 4, 5, 6]
    assert [h.score for h in released] == [0.8, 0.8, 0.45, 0.0, -0.05, -0.6]
    for hit in released:
        exact = scores[int(hit.doc_id[1:])]
        assert hit.score is not None
        assert abs(hit.score - exact) <= COARSE_SCORE_STEP / 2 + 1e-12


def test_coarse_scores_lie_on_the_grid() -> None:
    scores = np.random.default_rng(0).uniform(-1, 1, 500).tolist()
    released = release_hits(_hits(scores), ScoreRelease.COARSE)
    levels = {h.score for h in released}
    assert all(s is not None and round(s / COARSE_SCORE_STEP, 9).is_integer() for s in levels)
    assert len(levels) <= 2 / COARSE_SCORE_STEP + 1


def test_exact_release_is_the_search_answer() -> None:
    scores = [0.91, 0.33, 0.5]
    released = release_hits(_hits(scores), ScoreRelease.EXACT)
    assert [(h.doc_id, h.rank, h.score) for h in released] == [
        ("d0", 1, 0.91),
        ("d2", 2, 0.5),
        ("d1", 3, 0.33),
    ]


def test_equal_scores_keep_the_search_order() -> None:
    released = release_hits(_hits([0.5, 0.5, 0.7]), ScoreRelease.RANK)
    assert [h.doc_id for h in released] == ["d2", "d0", "d1"]


def test_an_unknown_release_is_refused() -> None:
    with pytest.raises(ValueError, match="loose"):
        release_hits(_hits([0.1]), "loose")  # type: ignore[arg-type]
