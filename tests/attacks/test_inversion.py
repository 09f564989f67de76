"""End-to-end inversion and attribute attacks on a synthetic corpus with a known encoder.

The synthetic "encoder" embeds a text as the normalised sum of fixed random word vectors
(a bag-of-words encoder), so the words are recoverable in principle; a working attack
must beat chance by a wide margin, a broken one (wrong labels, wrong threshold) cannot.
"""

from __future__ import annotations

import numpy as np
import pytest

from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.bow_inversion import ATTACK_NAME, BowConfig, BowInverter
from attacks.nearest_neighbour_inversion import NearestNeighbourInverter
from attacks.text_metrics import inversion_report, score_texts

WORDS = [f"word{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(60)]
DIMENSION = 48
WORDS_PER_TEXT = 4


def _corpus(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=WORDS_PER_TEXT, replace=False)) for _ in range(count)]


def _encode(texts: list[str]) -> np.ndarray:
    table = np.random.default_rng(1234).standard_normal((len(WORDS), DIMENSION))
    index = {w: i for i, w in enumerate(WORDS)}
    vectors = np.array([table[[index[w] for w in t.split()]].sum(axis=0) for t in texts])
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


@pytest.mark.slow  # ~30 s alone, 130 s on a busy 2-core machine
def test_bow_inversion_beats_chance_on_held_out_texts() -> None:
    # Prepare: public and private texts are disjoint draws.
    public, private = _corpus(2000, seed=0), _corpus(200, seed=1)
    config = BowConfig(vocab_size=100, hidden=128, epochs=10, batch_size=32, learning_rate=3e-3)
    # Execute
    inverter = BowInverter(config).fit(public, _encode(public))
    report = inversion_report(
        ATTACK_NAME, inverter, private, _encode(private), target="synthetic", threat_model="test"
    )
    # Assert: guessing 4 random words of 60 gives F1 ~ 4/60; the encoder is invertible.
    assert report.metrics["f1"] > 0.6
    assert report.attack == ATTACK_NAME
    assert set(inverter.vocabulary) == set(WORDS)


def test_bow_inversion_fails_on_embeddings_of_random_noise() -> None:
    # Prepare: targets whose vectors carry no information about their words.
    public, private = _corpus(1000, seed=0), _corpus(200, seed=1)
    config = BowConfig(vocab_size=100, hidden=64, epochs=3, seed=0)
    inverter = BowInverter(config).fit(public, _encode(public))
    noise = np.random.default_rng(5).standard_normal((200, DIMENSION))
    # Execute
    scores = score_texts(private, inverter.invert(noise))
    # Assert
    assert scores.f1 < 0.3


def test_nearest_neighbour_returns_the_closest_public_text() -> None:
    # Prepare
    public = _corpus(500, seed=0)
    vectors = _encode(public)
    noisy = vectors[:50] + 0.01 * np.random.default_rng(2).standard_normal((50, DIMENSION))
    # Execute
    inverter = NearestNeighbourInverter().fit(public, vectors)
    recovered = inverter.invert(noisy)
    # Assert
    assert recovered == public[:50]


def test_nearest_neighbour_partial_recovery_beats_chance() -> None:
    public, private = _corpus(3000, seed=0), _corpus(200, seed=1)
    inverter = NearestNeighbourInverter().fit(public, _encode(public))
    scores = score_texts(private, inverter.invert(_encode(private)))
    assert scores.f1 > 0.3  # random public text: ~4/60


def test_unfitted_inverters_refuse() -> None:
    with pytest.raises(RuntimeError, match="fit"):
        BowInverter().invert(np.zeros((1, DIMENSION)))
    with pytest.raises(RuntimeError, match="fit"):
        NearestNeighbourInverter().invert(np.zeros((1, DIMENSION)))


def test_attribute_probe_beats_majority_baseline() -> None:
    # Prepare: attribute = whether the text contains one of the first 10 words.
    public, private = _corpus(2000, seed=0), _corpus(400, seed=1)
    marked = set(WORDS[:10])

    def labels(texts: list[str]) -> list[str]:
        return ["yes" if marked & set(t.split()) else "no" for t in texts]

    # Execute
    probe = AttributeProbe().fit(_encode(public), labels(public))
    report = attribute_report(
        probe, _encode(private), labels(private), target="synthetic", threat_model="test"
    )
    # Assert
    assert report.metrics["accuracy"] > report.metrics["majority_baseline"] + 0.2
    assert report.metrics["advantage"] == pytest.approx(
        report.metrics["accuracy"] - report.metrics["majority_baseline"]
    )
