"""Probe detection on real SciFact claims (natural) against basis and random probe sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedding_core.data.beir import load_beir
from embedding_core.encoder import Encoder
from secure_index.service.probe_detector import (
    ORTHOGONAL_MEAN_ABS_COSINE,
    SPARSE_TRIGGER,
    WINDOW,
    ProbeDetector,
    ProbeSignal,
    mean_abs_pairwise_cosine,
    participation_ratio,
)

DIM = 384


@pytest.fixture(scope="module")
def claims(shared_data_dir: Path) -> np.ndarray:
    """All-MiniLM-L6-v2 embeddings of SciFact's 1,109 claims, in file order."""
    folder = shared_data_dir / "scifact"
    texts = [*load_beir(folder, split="train").queries.values()]
    texts += [*load_beir(folder, split="test").queries.values()]
    return np.asarray(Encoder.load().encode(texts), dtype=np.float32)


def _random_directions(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM))
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def _alerts(detector: ProbeDetector, key: str, vectors: np.ndarray) -> list[tuple[int, str]]:
    found = []
    for i, v in enumerate(vectors):
        alert = detector.observe(key, v)
        if alert is not None:
            found.append((i, alert.signal))
    return found


def test_natural_claims_never_alert_in_file_order_or_shuffled(claims: np.ndarray) -> None:
    # Prepare: the claims as a partner would send them, and three seeded shuffles
    orders = [np.arange(len(claims))]
    orders += [np.random.default_rng(seed).permutation(len(claims)) for seed in range(3)]
    detector = ProbeDetector()
    # Execute
    alerts = [_alerts(detector, f"partner-{i}", claims[o]) for i, o in enumerate(orders)]
    # Assert
    assert alerts == [[], [], [], []]
    assert len(claims) == 1109


def test_basis_vectors_alert_within_a_few_queries() -> None:
    # Prepare: the 384 basis vectors, signs flipped at random (as a careful prober might)
    signs = np.random.default_rng(0).choice([-1.0, 1.0], DIM)
    probes = np.eye(DIM, dtype=np.float32) * signs[:, None].astype(np.float32)
    # Execute
    alerts = _alerts(ProbeDetector(), "prober", probes)
    # Assert: after SPARSE_TRIGGER queries, and again after each fresh SPARSE_TRIGGER
    assert alerts[0] == (SPARSE_TRIGGER - 1, ProbeSignal.BASIS_LIKE)
    assert len(alerts) == DIM // SPARSE_TRIGGER


def test_sparse_probes_alert_even_when_not_basis_vectors() -> None:
    rng = np.random.default_rng(1)
    probes = np.zeros((8, DIM), dtype=np.float32)
    for row in probes:
        row[rng.choice(DIM, 3, replace=False)] = rng.standard_normal(3)
    assert _alerts(ProbeDetector(), "prober", probes)[0][1] == ProbeSignal.BASIS_LIKE


def test_random_directions_alert_once_the_window_is_full() -> None:
    probes = _random_directions(3 * WINDOW, seed=2)
    alerts = _alerts(ProbeDetector(), "prober", probes)
    assert alerts[0] == (WINDOW - 1, ProbeSignal.NEAR_ORTHOGONAL)
    assert len(alerts) == 3


def test_one_keys_probing_does_not_touch_another_keys_window(claims: np.ndarray) -> None:
    # Prepare: a prober and a natural partner interleaved
    detector = ProbeDetector()
    probes = _random_directions(WINDOW, seed=3)
    natural_alerts, probe_alerts = [], []
    # Execute
    for i in range(WINDOW):
        natural_alerts.append(detector.observe("natural", claims[i]))
        probe_alerts.append(detector.observe("prober", probes[i]))
    # Assert
    assert natural_alerts == [None] * WINDOW
    assert [a is not None for a in probe_alerts].count(True) == 1


def test_a_forgotten_key_starts_a_fresh_window() -> None:
    detector = ProbeDetector()
    probes = _random_directions(WINDOW, seed=4)
    for v in probes[:-1]:
        assert detector.observe("prober", v) is None
    detector.forget("prober")
    assert detector.observe("prober", probes[-1]) is None


def test_statistics_on_known_sets() -> None:
    assert participation_ratio(np.eye(DIM)[0]) == pytest.approx(1.0)
    assert participation_ratio(np.ones(DIM)) == pytest.approx(DIM)
    assert mean_abs_pairwise_cosine(np.eye(8)) == 0.0
    assert mean_abs_pairwise_cosine(np.ones((4, 8))) == pytest.approx(1.0)
    expected = np.sqrt(2 / (np.pi * DIM))  # E|cos| of random directions
    random_mean = mean_abs_pairwise_cosine(_random_directions(256, seed=5))
    assert random_mean == pytest.approx(expected, rel=0.05)
    assert random_mean < ORTHOGONAL_MEAN_ABS_COSINE


def test_zero_and_non_finite_vectors_are_ignored() -> None:
    detector = ProbeDetector()
    assert detector.observe("k", np.zeros(DIM)) is None
    assert detector.observe("k", np.full(DIM, np.nan)) is None
