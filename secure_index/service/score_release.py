"""How much of a hit's similarity score the gateway releases to a partner.

Full-precision scores are linear measurements of the stored vectors: a query ``q``
answered with ``score(d) = <q, d>`` for every document ``d`` gives one coordinate of
``d`` per basis vector, so ``dim`` queries rebuild the whole index, and any ``dim``
linearly independent queries (texts included) rebuild it by least squares. This is
the equation-solving attack of model extraction (F. Tramèr, F. Zhang, A. Juels,
M. K. Reiter, T. Ristenpart, "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 4.1), whose own countermeasure (section 8) is to release
less: class labels only, or rounded confidences. We do the same for retrieval:

- ``rank`` (the default): hits carry their rank 1..k and ``score: null``. A ranking
  is invariant under any monotone change of the scores, so it gives no linear
  equation to solve (only an order, which still hints at directions: docs/index.md
  measures how much); it is all that ranking metrics (nDCG, recall) need.
- ``coarse``: scores rounded to a grid of :data:`COARSE_SCORE_STEP` (0.05 for cosine
  scores in [-1, 1]: 41 levels). Each answer then bounds a coordinate only to within
  half a step, but averaging many queries still narrows it: a risky grant.
- ``exact``: today's full-precision scores. Only by explicit grant, to a partner
  trusted with the stored vectors themselves (they can rebuild them).

Whatever is released, results are in rank order (best first), ties after rounding in
the order of the exact scores.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["COARSE_SCORE_STEP", "ReleasedHit", "ScoreRelease", "ScoredHit", "release_hits"]

COARSE_SCORE_STEP = 0.05


class ScoreRelease(enum.StrEnum):
    """What a partner key's query answers carry besides ids, owners and ranks."""

    RANK = "rank"  # rank only, score null (default)
    COARSE = "coarse"  # scores rounded to COARSE_SCORE_STEP
    EXACT = "exact"  # full-precision scores (risky: rebuilds vectors)


@dataclass(frozen=True)
class ReleasedHit:
    """One result as released: id, owner, rank (1 = best) and the released score."""

    doc_id: str
    owner: str
    rank: int
    score: float | None


def _coarse(score: float) -> float:
    # round half away from zero on the grid; the multiplication keeps 0.05-steps exact
    steps = math.floor(abs(score) / COARSE_SCORE_STEP + 0.5)
    return math.copysign(round(steps * COARSE_SCORE_STEP, 10), score) if steps else 0.0


class ScoredHit(Protocol):
    """What :func:`release_hits` reads of a hit (the index's and the CKKS search's)."""

    @property
    def doc_id(self) -> str: ...  # noqa: D102

    @property
    def owner(self) -> str: ...  # noqa: D102

    @property
    def score(self) -> float: ...  # noqa: D102


def release_hits(hits: Sequence[ScoredHit], mode: ScoreRelease) -> list[ReleasedHit]:
    """Hits in rank order (best score first) with what ``mode`` releases of their scores.

    Args:
        hits: The search's hits with exact scores (higher is better).
        mode: The key's score release.
    """
    mode = ScoreRelease(mode)
    ordered = sorted(hits, key=lambda h: -float(h.score))  # stable: equal scores keep order
    released: list[ReleasedHit] = []
    for rank, hit in enumerate(ordered, start=1):
        score: float | None
        if mode is ScoreRelease.EXACT:
            score = float(hit.score)
        elif mode is ScoreRelease.COARSE:
            score = _coarse(float(hit.score))
        else:
            score = None
        released.append(ReleasedHit(hit.doc_id, hit.owner, rank, score))
    return released
