"""Score reconstruction: a partner rebuilds stored document vectors from query answers.

A partner of the index sends probes and reads, for each, the top-``k`` document ids with
their ranks and, when the gateway releases them, their scores. Every score is a linear
measurement ``<q, x_j>`` of a stored vector (affine under DCPE, rounded when coarse), so
enough probes determine ``x_j``: the equation-solving attack of Tramèr, Zhang, Juels,
Reiter and Ristenpart, "Stealing Machine Learning Models via Prediction APIs" (USENIX
Security 2016), aimed at the index's documents instead of a model's weights.

Probes (:class:`ProbePlan`): *vector* probes where the key may send vectors (the basis
vectors ``±e_i``, then random Gaussian directions), and *text* probes: public texts the
attacker embeds with the public encoder and the published query adapter, i.e. exactly
the vectors the gateway searches with.

Estimators (:class:`ScoreReconstructionAttack`):

* **scores released** (exact or rounded): a global affine calibration ``s = a + b<q, x>``
  (DCPE's scale and offset; 0 and 1 for cosine and CKKS scores), then per document ridge
  least squares on the probes that returned it, shrunk toward the public mean where it
  came back too rarely;
* **ranks only**: an answer is an ordered, censored view of the latent scores. A document
  at rank ``r`` of ``N`` gets the Gaussian rank score ``Phi^-1(1 - (r - 1/2) / N)``, one
  not returned the mean of the censored tail; ridge regression of these pseudo-scores on
  the probe vectors estimates ``x_j``'s direction (a single-index model: Stein's lemma;
  Plan and Vershynin, "The Generalized Lasso With Non-Linear Observations", IEEE Trans.
  Inf. Theory 2016). The attacker mixes it with the public mean, choosing the mix and
  the ridge on a shadow corpus of public vectors that it ranks itself.

Refusals (:func:`collect`): a 403 (no vector grant, a suspended key) ends a strategy and
the attacker moves on to the next one (vectors, then texts); a 429 ends the attack (the
oracle waits out short rate-limit 429s itself, so a 429 here is the query budget). The
report counts the answered probes and gives the no-signal baseline: the cosine of the
public mean, the best guess with no answer at all.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from attacks.base import AttackReport

__all__ = [
    "ATTACK_NAME",
    "Answer",
    "Hit",
    "Oracle",
    "ProbeBatch",
    "ProbePlan",
    "Reconstruction",
    "Refusal",
    "ScoreReconstructionAttack",
    "Transcript",
    "collect",
    "reconstruction_report",
    "simulate_answers",
    "text_probes",
    "vector_probes",
]

logger = logging.getLogger(__name__)

ATTACK_NAME: Final = "score_reconstruction"
HIGH_COSINE: Final = 0.9
RIDGE_GRID: Final = (1e-3, 1e-2, 1e-1, 1.0)  # relative to the mean eigenvalue of the Gram
MIX_GRID: Final = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 1e6)  # weight of the signal
EM_ROUNDS: Final = 8
COARSE_STEP: Final = 0.05  # the rounding grid a coarse release is simulated with
Matrix = NDArray[np.float64]
Release = Literal["exact", "coarse", "rank"]


@dataclass(frozen=True)
class Hit:
    """One returned document: its id, its rank (1 = best) and its score, if released."""

    doc_id: str
    rank: int
    score: float | None


@dataclass(frozen=True)
class Refusal:
    """A refused probe: the HTTP status (403, 429) and the gateway's problem."""

    status: int
    problem: str


Answer = tuple[Hit, ...] | Refusal


@dataclass(frozen=True)
class ProbeBatch:
    """Probes sent at once: their vectors as the attacker computes them, and texts."""

    kind: Literal["vector", "text"]
    vectors: Matrix
    texts: tuple[str, ...] = ()


Oracle = Callable[[ProbeBatch], Sequence[Answer]]


@dataclass(frozen=True)
class ProbePlan:
    """One probing strategy: its probes in the order they are sent."""

    kind: Literal["vector", "text"]
    vectors: Matrix
    texts: tuple[str, ...] = ()

    def batches(self, size: int, start: int = 0, stop: int | None = None) -> Iterator[ProbeBatch]:
        """The probes ``start:stop`` in batches of ``size``."""
        stop = len(self.vectors) if stop is None else min(stop, len(self.vectors))
        for i in range(start, stop, size):
            j = min(i + size, stop)
            yield ProbeBatch(self.kind, self.vectors[i:j], self.texts[i:j] if self.texts else ())


def _unit(vectors: NDArray[np.floating] | Matrix) -> Matrix:
    array = np.asarray(vectors, dtype=np.float64)
    return np.asarray(array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12))


def vector_probes(dimension: int, count: int, *, seed: int, basis: bool = True) -> ProbePlan:
    """``count`` vector probes: ``+e_i`` and ``-e_i`` first (if ``basis``), then random."""
    head = np.vstack([np.eye(dimension), -np.eye(dimension)]) if basis else np.zeros((0, dimension))
    rest = np.random.default_rng(seed).standard_normal((max(count - len(head), 0), dimension))
    return ProbePlan("vector", _unit(np.vstack([head, rest])[:count]))


def text_probes(
    texts: Sequence[str], vectors: NDArray[np.floating], count: int, *, seed: int
) -> ProbePlan:
    """``count`` public texts in a seeded order, with the vectors the gateway will use."""
    order = np.random.default_rng(seed).permutation(len(texts))[:count]
    return ProbePlan("text", _unit(np.asarray(vectors)[order]), tuple(texts[i] for i in order))


@dataclass
class Transcript:
    """What the attacker sent and what came back."""

    vectors: list[Matrix] = field(default_factory=list)  # one row per answered probe
    answers: list[tuple[Hit, ...]] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)  # answered probes by kind
    refusals: list[Refusal] = field(default_factory=list)
    attempted: int = 0

    @property
    def answered(self) -> int:
        """How many probes were answered."""
        return len(self.answers)

    def probe_matrix(self, dimension: int) -> Matrix:
        """The answered probes' vectors, one row each."""
        return np.vstack(self.vectors) if self.vectors else np.zeros((0, dimension))


def collect(
    oracle: Oracle,
    plans: Sequence[ProbePlan],
    budget: int,
    batch: int = 50,
    *,
    more: Callable[[int, int], bool] | None = None,
) -> Transcript:
    """Send up to ``budget`` probes, plan after plan, as a real attacker would.

    A 403 ends the current plan (the next one gets the probes left); a 429 (the query
    budget: the oracle waits out rate limits) or a short answer ends the attack. ``more``
    (a :meth:`embedding_core.time_share.TimeShare.more`) is asked before each batch
    whether its probes still fit, with the probes sent so far; its first no ends it too.
    """
    record = Transcript()
    for plan in plans:
        for probes in plan.batches(batch, 0, budget - record.attempted):
            if more is not None and not more(record.attempted, len(probes.vectors)):
                return record
            answers = list(oracle(probes))
            record.attempted += len(answers)
            refused = next((a for a in answers if isinstance(a, Refusal)), None)
            for vector, answer in zip(probes.vectors, answers, strict=False):
                if isinstance(answer, Refusal):
                    break
                record.vectors.append(vector[None, :])
                record.answers.append(answer)
                record.kinds[plan.kind] = record.kinds.get(plan.kind, 0) + 1
            if refused is not None:
                record.refusals.append(refused)
                logger.info(
                    "score reconstruction: %s probe refused (%d)", plan.kind, refused.status
                )
                if refused.status != 403:
                    return record
                break
            if len(answers) < len(probes.vectors):
                return record
    return record


CHOLESKY_PIVOT_RATIO: Final = 1e-4  # smallest / largest pivot below this: solve by SVD


def _least_squares(
    design: Matrix, y: Matrix, seen: NDArray[np.bool_], columns: NDArray[np.intp]
) -> list[Matrix]:
    """Each column's least-squares weights over the probes that saw it.

    The normal equations through a Cholesky factor: each column's Gram is the full one less
    the rows it did not see (or the rows it saw, whichever are fewer), several times faster than
    an SVD solve per column. An ill-conditioned Gram falls back to the SVD solve. The products
    are small, so BLAS runs them on one thread (two threads took 2.4x as long on 2 cores).
    """
    full = design.T @ design
    with threadpool_limits(limits=1, user_api="blas"):
        return [_solve_column(design, full, y[:, j], seen[:, j]) for j in columns]


def _solve_column(
    design: Matrix, full: Matrix, y: NDArray[np.float64], rows: NDArray[np.bool_]
) -> Matrix:
    kept, target = design[rows], y[rows]
    if 2 * int(rows.sum()) > len(rows):
        dropped = design[~rows]
        gram = full - dropped.T @ dropped
    else:
        gram = kept.T @ kept
    with contextlib.suppress(LinAlgError):  # not positive definite: the SVD solve below
        factor = cho_factor(gram, check_finite=False)
        pivots = np.abs(np.diag(factor[0]))
        if pivots.min() >= CHOLESKY_PIVOT_RATIO * pivots.max():  # else near-singular
            solved: Matrix = cho_solve(factor, kept.T @ target, check_finite=False)
            return solved
    return np.asarray(np.linalg.lstsq(kept, target, rcond=None)[0], dtype=np.float64)


def simulate_answers(
    probes: Matrix,
    doc_ids: Sequence[str],
    documents: Matrix,
    k: int,
    release: Release,
    *,
    coarse_step: float = COARSE_STEP,
) -> list[tuple[Hit, ...]]:
    """The answers of an exact top-``k`` inner-product index (tests, and the shadow)."""
    scores = np.asarray(probes, dtype=np.float64) @ np.asarray(documents, dtype=np.float64).T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]

    def released(value: float) -> float | None:
        if release == "rank":
            return None
        return round(value / coarse_step) * coarse_step if release == "coarse" else value

    return [
        tuple(Hit(doc_ids[j], r + 1, released(float(row[j]))) for r, j in enumerate(best))
        for row, best in zip(scores, top, strict=True)
    ]


@dataclass(frozen=True)
class Reconstruction:
    """The attacker's estimate of every stored vector it targets (unit rows)."""

    doc_ids: list[str]
    vectors: Matrix
    method: Literal["scores", "ranks", "prior"]
    params: dict[str, float] = field(default_factory=dict)


class ScoreReconstructionAttack:
    """Rebuilds stored vectors from a :class:`Transcript` (scores if released, else ranks).

    Args:
        public: The attacker's public embeddings: their mean is the prior (and the
            no-signal guess); a sample of them is the shadow corpus the rank estimator's
            settings are chosen on.
        corpus_size: Documents in the attacked collection (the gateway tells a partner).
        affine: Scores are an affine function of the inner product with a per-document
            offset (DCPE's L2 distances), not the inner product itself (cosine, CKKS).
        shadow_size: Shadow documents (at most ``corpus_size``).
        seed: Seeds the shadow sample.
    """

    def __init__(
        self,
        public: NDArray[np.floating],
        corpus_size: int,
        *,
        affine: bool = False,
        shadow_size: int = 500,
        seed: int = 0,
    ) -> None:
        self.affine = affine
        self.public = _unit(public)
        self.prior = _unit(self.public.mean(axis=0))
        self.corpus_size = max(int(corpus_size), 1)
        rng = np.random.default_rng(seed)
        pick = rng.choice(
            len(self.public), min(shadow_size, self.corpus_size, len(self.public)), replace=False
        )
        self.shadow = self.public[np.sort(pick)]

    def reconstruct(self, transcript: Transcript, doc_ids: Sequence[str]) -> Reconstruction:
        """Estimates for ``doc_ids`` (those never returned get the prior)."""
        dimension = len(self.prior)
        probes = transcript.probe_matrix(dimension)
        if transcript.answered == 0:
            return Reconstruction(list(doc_ids), np.tile(self.prior, (len(doc_ids), 1)), "prior")
        scored = any(h.score is not None for a in transcript.answers for h in a)
        if scored:
            return self._from_scores(probes, transcript.answers, doc_ids)
        return self._from_ranks(probes, transcript.answers, doc_ids)

    # -- scores -----------------------------------------------------------------------------
    def _observed(
        self, answers: Sequence[tuple[Hit, ...]], doc_ids: Sequence[str]
    ) -> tuple[Matrix, NDArray[np.bool_], float]:
        """The released scores (probe x document), where each was seen, and their sign."""
        column = {d: i for i, d in enumerate(doc_ids)}
        y = np.zeros((len(answers), len(doc_ids)))
        seen = np.zeros(y.shape, dtype=bool)
        trend = []
        for p, answer in enumerate(answers):
            hits = [h for h in answer if h.score is not None]
            scores = [float(h.score) for h in answer if h.score is not None]
            if len(hits) > 1 and np.ptp(scores) > 0:
                trend.append(float(np.corrcoef([h.rank for h in hits], scores)[0, 1]))
            for h, score in zip(hits, scores, strict=True):
                if h.doc_id in column:
                    y[p, column[h.doc_id]], seen[p, column[h.doc_id]] = score, True
        sign = -1.0 if trend and np.nanmedian(trend) > 0 else 1.0  # distances: lower is better
        return sign * y, seen, sign

    def _censored_fit(
        self, probes: Matrix, y: Matrix, seen: NDArray[np.bool_], ridge: float
    ) -> Matrix:
        """Censored least squares (Tobit EM): a document not returned scored below the k-th.

        Observed scores enter as they are; the score of a document a probe did not return
        is imputed, each round, as its expected value below that probe's lowest returned
        score given the current fit (Amemiya, "Regression Analysis when the Dependent
        Variable Is Truncated Normal", Econometrica 1973). All documents share one Gram.
        """
        floor = np.where(seen.any(axis=1), np.where(seen, y, np.inf).min(axis=1), np.inf)
        spread = float(np.std(y[seen])) if seen.any() else 1.0
        top = float(np.max(y[seen], initial=0.0))
        y = np.where(seen, y, np.minimum(floor, top)[:, None] - spread)
        d = probes.shape[1]
        design = probes - probes.mean(axis=0) if self.affine else probes
        gram = design.T @ design
        solve = np.linalg.inv(gram + ridge * np.trace(gram) / d * np.eye(d)) @ design.T
        weights = np.zeros((d, y.shape[1]))
        for _ in range(EM_ROUNDS):
            offset = y.mean(axis=0) if self.affine else np.zeros(y.shape[1])
            weights = solve @ (y - offset)
            predicted = design @ weights + offset
            sigma = max(float(np.sqrt(np.mean((predicted - y)[seen] ** 2))), 1e-6 * spread)
            alpha = np.clip((floor[:, None] - predicted) / sigma, -30.0, 30.0)
            tail = predicted - sigma * norm.pdf(alpha) / np.maximum(norm.cdf(alpha), 1e-300)
            y = np.where(seen, y, np.minimum(tail, floor[:, None]))
        return _unit(weights.T)

    def _from_scores(
        self, probes: Matrix, answers: Sequence[tuple[Hit, ...]], doc_ids: Sequence[str]
    ) -> Reconstruction:
        k = max(len(a) for a in answers)
        ids = [f"shadow-{i}" for i in range(len(self.shadow))]
        shadow = self._observed(simulate_answers(probes, ids, self.shadow, k, "exact"), ids)
        best = max(
            (
                float(
                    np.mean(
                        np.sum(
                            self._censored_fit(probes, shadow[0], shadow[1], r) * self.shadow,
                            axis=1,
                        )
                    )
                ),
                r,
            )
            for r in RIDGE_GRID
        )
        y, seen, sign = self._observed(answers, doc_ids)
        out = self._censored_fit(probes, y, seen, best[1])
        d = probes.shape[1]
        solvable = np.flatnonzero(seen.sum(axis=0) >= 2 * d + 2)  # enough equations: solve them
        design = np.hstack([probes, np.ones((len(probes), 1))]) if self.affine else probes
        for j, weights in zip(solvable, _least_squares(design, y, seen, solvable), strict=True):
            out[j] = _unit(weights[:d])
        out[~seen.any(axis=0)] = self.prior
        return Reconstruction(
            list(doc_ids), out, "scores", {"sign": sign, "ridge": best[1], "shadow_cosine": best[0]}
        )

    # -- ranks ------------------------------------------------------------------------------
    def _pseudo_scores(self, answers: Sequence[tuple[Hit, ...]], doc_ids: Sequence[str]) -> Matrix:
        """Gaussian rank scores of every (probe, document); the censored-tail mean if unseen."""
        n = self.corpus_size
        column = {d: i for i, d in enumerate(doc_ids)}
        ranks = norm.ppf(1.0 - (np.arange(1, n + 1) - 0.5) / n)  # rank r -> ranks[r - 1]
        y = np.empty((len(answers), len(doc_ids)))
        for p, answer in enumerate(answers):
            k = min(len(answer), n - 1)
            z = norm.ppf(1.0 - k / n) if k > 0 else 0.0
            y[p] = -norm.pdf(z) / max(norm.cdf(z), 1e-12) if k > 0 else 0.0
            hits = [(column[h.doc_id], min(h.rank, n) - 1) for h in answer if h.doc_id in column]
            if hits:
                cols, rows = zip(*hits, strict=True)
                y[p, list(cols)] = ranks[list(rows)]
        return y

    @staticmethod
    def _directions(probes: Matrix, y: Matrix, ridge: float) -> Matrix:
        centred = probes - probes.mean(axis=0)
        gram = centred.T @ centred
        gram += ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
        return _unit(np.linalg.solve(gram, centred.T @ (y - y.mean(axis=0))).T)

    def _mix(self, directions: Matrix, alpha: float) -> Matrix:
        return _unit(self.prior + alpha * directions)

    def _from_ranks(
        self, probes: Matrix, answers: Sequence[tuple[Hit, ...]], doc_ids: Sequence[str]
    ) -> Reconstruction:
        k = max(len(a) for a in answers)
        ids = [f"shadow-{i}" for i in range(len(self.shadow))]
        shadow_answers = simulate_answers(probes, ids, self.shadow, k, "rank")
        shadow_y = self._pseudo_scores(shadow_answers, ids)
        best = (-np.inf, RIDGE_GRID[0], MIX_GRID[0])
        for ridge in RIDGE_GRID:
            directions = self._directions(probes, shadow_y, ridge)
            for alpha in MIX_GRID:
                score = float(np.mean(np.sum(self._mix(directions, alpha) * self.shadow, axis=1)))
                if score > best[0]:
                    best = (score, ridge, alpha)
        _, ridge, alpha = best
        directions = self._directions(probes, self._pseudo_scores(answers, doc_ids), ridge)
        estimate = self._mix(directions, alpha)
        return Reconstruction(
            list(doc_ids),
            estimate,
            "ranks",
            {"ridge": ridge, "mix": alpha, "shadow_cosine": best[0]},
        )


def reconstruction_report(
    reconstruction: Reconstruction,
    truth: Mapping[str, NDArray[np.floating]],
    transcript: Transcript,
    prior: NDArray[np.floating],
    *,
    target: str,
    threat_model: str,
    seconds: float,
    details: Mapping[str, object] | None = None,
) -> AttackReport:
    """Cosine of each reconstruction to its true vector, against the no-signal baseline."""
    started = time.perf_counter()
    keep = [i for i, d in enumerate(reconstruction.doc_ids) if d in truth]
    true = _unit(np.vstack([np.asarray(truth[reconstruction.doc_ids[i]]) for i in keep]))
    cosines = np.sum(reconstruction.vectors[keep] * true, axis=1)
    baseline = true @ _unit(np.asarray(prior, dtype=np.float64))
    metrics = {
        "mean_cosine": float(np.mean(cosines)),
        "share_above_0_9": float(np.mean(cosines > HIGH_COSINE)),
        "baseline_cosine": float(np.mean(baseline)),
        "advantage": float(np.mean(cosines) - np.mean(baseline)),
        "probes_attempted": float(transcript.attempted),
        "probes_answered": float(transcript.answered),
        "documents": float(len(keep)),
    }
    return AttackReport(
        attack=ATTACK_NAME,
        target=target,
        threat_model=threat_model,
        metrics=metrics,
        seconds=seconds + time.perf_counter() - started,
        details={
            "estimator": reconstruction.method,
            "estimator_params": reconstruction.params,
            "answered_by_kind": dict(transcript.kinds),
            "refusals": [
                {"status": r.status, "problem": r.problem} for r in transcript.refusals[:3]
            ],
            **(details or {}),
        },
    )
