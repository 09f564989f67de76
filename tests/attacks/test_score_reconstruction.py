"""The score-reconstruction attack against in-process oracles (seeded corpora, real numpy).

The oracles answer the way the gateway does (top-k ids with ranks; scores exact, rounded
or withheld; 403 for a refused probe kind; 429 once a budget is spent), so each test
plays the partner against one release policy. The attack must succeed where scores leak
(vector probes rebuild every stored vector), fall back to the no-signal guess when
nothing is answered, and count exactly what was answered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from attacks.score_reconstruction import (
    ATTACK_NAME,
    Answer,
    Hit,
    ProbeBatch,
    ProbePlan,
    Refusal,
    Release,
    ScoreReconstructionAttack,
    collect,
    reconstruction_report,
    simulate_answers,
    text_probes,
    vector_probes,
)

DIM, DOCS, K = 32, 200, 50


def _text_like(rng: np.random.Generator, count: int) -> np.ndarray:
    """Anisotropic unit vectors around a few topics (the shape of text embeddings)."""
    topics = rng.standard_normal((6, DIM))
    scales = np.linspace(1.0, 0.2, DIM)
    rows = topics[rng.integers(0, 6, count)] + 0.8 * rng.standard_normal((count, DIM)) * scales
    return np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float64)


class Gateway:
    """An in-process index with a partner key's policy: release, vector grant, budget."""

    def __init__(
        self,
        documents: np.ndarray,
        *,
        release: Release,
        vectors: bool,
        budget: int | None = None,
        transform: str = "inner",
        seed: int = 0,
    ) -> None:
        self.ids = [f"doc-{i}" for i in range(len(documents))]
        self.documents, self.release, self.vectors = documents, release, vectors
        self.budget, self.answered, self.transform = budget, 0, transform
        self.noise = np.random.default_rng(seed).standard_normal(documents.shape) * 0.02

    def __call__(self, batch: ProbeBatch) -> Sequence[Answer]:
        out: list[Answer] = []
        for vector in batch.vectors:
            if batch.kind == "vector" and not self.vectors:
                out.append(Refusal(403, "your key may not send query vectors"))
                return out
            if self.budget is not None and self.answered >= self.budget:
                out.append(Refusal(429, "query budget spent"))
                return out
            self.answered += 1
            out.extend(self._answer(vector))
        return out

    def _answer(self, vector: np.ndarray) -> list[tuple[Hit, ...]]:
        if self.transform == "inner":
            return simulate_answers(vector[None, :], self.ids, self.documents, K, self.release)
        # DCPE-like: scaled, perturbed ciphertexts compared by L2 distance (higher = closer)
        cipher = 3.0 * self.documents + self.noise
        scores = -np.sum((cipher - 3.0 * vector) ** 2, axis=1)
        best = np.argsort(-scores, kind="stable")[:K]
        return [tuple(Hit(self.ids[j], r + 1, float(scores[j])) for r, j in enumerate(best))]


def _attack(
    gateway: Gateway, plans: Sequence[object], budget: int, public: np.ndarray, **kwargs: bool
) -> tuple[float, float, int, str]:
    transcript = collect(gateway, plans, budget)  # type: ignore[arg-type]
    attack = ScoreReconstructionAttack(public, len(gateway.ids), seed=1, **kwargs)
    result = attack.reconstruct(transcript, gateway.ids)
    report = reconstruction_report(
        result,
        dict(zip(gateway.ids, gateway.documents, strict=True)),
        transcript,
        attack.prior,
        target="synthetic",
        threat_model="test",
        seconds=0.0,
    )
    assert report.attack == ATTACK_NAME
    metrics = report.metrics
    return metrics["mean_cosine"], metrics["baseline_cosine"], transcript.answered, result.method


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return _text_like(rng, DOCS), _text_like(rng, 3000)


def test_exact_scores_and_vector_probes_rebuild_every_vector(
    corpus: tuple[np.ndarray, np.ndarray],
) -> None:
    # Prepare
    documents, public = corpus
    gateway = Gateway(documents, release="exact", vectors=True)
    # Execute
    cosine, baseline, answered, method = _attack(
        gateway, [vector_probes(DIM, 400, seed=3)], 400, public
    )
    # Assert
    assert method == "scores"
    assert answered == 400
    assert cosine > 0.999 > baseline


def test_probes_in_a_subspace_rebuild_each_vector_s_part_in_that_subspace(
    corpus: tuple[np.ndarray, np.ndarray],
) -> None:
    # Prepare: every probe lies in the first half of the coordinates, so each document's
    # equations are singular (the Cholesky path must hand them to the SVD solve), and
    # the least-squares answer is the document's part in that half.
    documents, public = corpus
    half = DIM // 2
    probes = vector_probes(DIM, 400, seed=3, basis=False)
    flat = probes.vectors.copy()
    flat[:, half:] = 0.0
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    ids = [f"doc-{i}" for i in range(DOCS)]
    transcript = collect(  # top-DOCS: every probe returns every document
        lambda batch: simulate_answers(batch.vectors, ids, documents, DOCS, "exact"),
        [ProbePlan("vector", flat)],
        400,
    )
    # Execute
    result = ScoreReconstructionAttack(public, DOCS, seed=1).reconstruct(transcript, ids)
    # Assert
    expected = documents[:, :half] / np.linalg.norm(documents[:, :half], axis=1, keepdims=True)
    assert result.method == "scores"
    assert np.all(np.isfinite(result.vectors))
    assert np.allclose(result.vectors[:, half:], 0.0, atol=1e-6)
    cosines = np.sum(result.vectors[:, :half] * expected, axis=1)
    assert cosines.min() > 0.999


def test_rounded_scores_still_rebuild_the_vectors(corpus: tuple[np.ndarray, np.ndarray]) -> None:
    documents, public = corpus
    gateway = Gateway(documents, release="coarse", vectors=True)
    cosine, _, _, method = _attack(gateway, [vector_probes(DIM, 400, seed=3)], 400, public)
    assert method == "scores"
    assert cosine > 0.95


def test_affine_distance_scores_are_calibrated_away(corpus: tuple[np.ndarray, np.ndarray]) -> None:
    # DCPE's scores are negative squared distances of scaled, perturbed vectors.
    documents, public = corpus
    gateway = Gateway(documents, release="exact", vectors=True, transform="dcpe")
    cosine, _, _, _ = _attack(gateway, [vector_probes(DIM, 400, seed=3)], 400, public, affine=True)
    assert cosine > 0.95


def test_without_answers_the_attacker_has_only_the_public_mean(
    corpus: tuple[np.ndarray, np.ndarray],
) -> None:
    # Prepare: vector probes are refused and no text budget is left.
    documents, public = corpus
    gateway = Gateway(documents, release="rank", vectors=False, budget=0)
    plans = [
        vector_probes(DIM, 100, seed=3),
        text_probes([f"t{i}" for i in range(100)], public[:100], 100, seed=4),
    ]
    # Execute
    cosine, baseline, answered, method = _attack(gateway, plans, 200, public)
    # Assert: one 403 moved the attacker to texts, one 429 stopped it, nothing answered.
    assert (answered, method) == (0, "prior")
    assert cosine == pytest.approx(baseline, abs=1e-9)


def test_a_refused_probe_kind_hands_the_rest_to_the_next_plan(
    corpus: tuple[np.ndarray, np.ndarray],
) -> None:
    documents, public = corpus
    gateway = Gateway(documents, release="rank", vectors=False, budget=120)
    plans = [
        vector_probes(DIM, 300, seed=3),
        text_probes([f"t{i}" for i in range(300)], public[:300], 300, seed=4),
    ]
    transcript = collect(gateway, plans, 250, batch=32)
    assert transcript.answered == 120
    assert transcript.kinds == {"text": 120}
    assert [r.status for r in transcript.refusals] == [403, 429]


def test_ranks_of_text_probes_leak_less_than_scores_but_more_than_nothing(
    corpus: tuple[np.ndarray, np.ndarray],
) -> None:
    # Prepare: rank-only answers to in-domain public texts (the default release).
    documents, public = corpus
    texts = [f"t{i}" for i in range(1000)]
    probe = text_probes(texts, public[:1000], 1000, seed=4)
    # Execute
    rank, baseline, answered, method = _attack(
        Gateway(documents, release="rank", vectors=False), [probe], 1000, public[1000:]
    )
    exact, _, _, _ = _attack(
        Gateway(documents, release="exact", vectors=False), [probe], 1000, public[1000:]
    )
    # Assert: ranks carry a real signal (a strong attacker uses it), scores far more.
    assert (answered, method) == (1000, "ranks")
    assert baseline + 0.1 < rank < exact
    assert exact > 0.95


def test_a_time_share_ends_the_probing_between_batches(
    corpus: tuple[np.ndarray, np.ndarray],
) -> None:
    # Prepare: a share that fits 120 probes, asked before each batch of 50
    documents, _ = corpus
    gateway = Gateway(documents, release="exact", vectors=True)
    asked: list[tuple[int, int]] = []

    def more(sent: int, step: int) -> bool:
        asked.append((sent, step))
        return sent + step <= 120

    # Execute
    transcript = collect(gateway, [vector_probes(DIM, 400, seed=3)], 400, more=more)
    # Assert: two batches sent, the third (ending at 150) never started
    assert transcript.attempted == transcript.answered == gateway.answered == 100
    assert asked == [(0, 50), (50, 50), (100, 50)]
