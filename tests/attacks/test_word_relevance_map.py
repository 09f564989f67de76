"""The learned word relevance: it generalises to words no public sentence contains."""

from __future__ import annotations

import numpy as np
import pytest

from attacks.word_relevance_map import WordRelevanceMap

DIM = 32


def _world(seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A vocabulary with word vectors, and a secret mixing that sentence embeddings apply."""
    rng = np.random.default_rng(seed)
    words = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}x" for i in range(400)]  # letters only
    vectors = rng.standard_normal((len(words), DIM)).astype(np.float32)
    mixing = (np.eye(DIM) + 0.9 * rng.standard_normal((DIM, DIM)) / np.sqrt(DIM)).astype(np.float32)
    return words, vectors, mixing


def _sentences(
    rng: np.random.Generator,
    words: list[str],
    vectors: np.ndarray,
    mixing: np.ndarray,
    pool: range,
    n: int,
) -> tuple[list[str], np.ndarray]:
    texts, embeddings = [], []
    for _ in range(n):
        chosen = rng.choice(list(pool), size=4, replace=False)
        texts.append(" ".join(words[i] for i in chosen))
        embeddings.append(vectors[chosen].sum(axis=0) @ mixing)
    return texts, np.asarray(embeddings, dtype=np.float32)


def _recall_at(
    k: int, queries: np.ndarray, texts: list[str], words: list[str], vectors: np.ndarray
) -> float:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    found = total = 0
    for query, text in zip(queries, texts, strict=True):
        top = {words[i] for i in np.argsort(-(unit @ query))[:k]}
        truth = set(text.split())
        found += len(truth & top)
        total += len(truth)
    return found / total


def test_learned_relevance_ranks_unseen_words_better_than_the_plain_cosine() -> None:
    # Prepare: public sentences use words 0-199 only; targets use words 200-399.
    words, vectors, mixing = _world(0)
    rng = np.random.default_rng(1)
    public_texts, public_vectors = _sentences(rng, words, vectors, mixing, range(200), 3000)
    target_texts, targets = _sentences(rng, words, vectors, mixing, range(200, 400), 200)
    unit_targets = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    # Execute
    word_map = WordRelevanceMap(epochs=20, negatives=256, learning_rate=3e-3).fit(
        public_texts, public_vectors, words, vectors
    )
    mapped = np.stack([word_map.query(t) for t in targets])
    # Assert: the map undoes part of the mixing, for words it never saw in training.
    plain = _recall_at(8, unit_targets, target_texts, words, vectors)
    learned = _recall_at(8, mapped, target_texts, words, vectors)
    assert learned > plain + 0.1, (plain, learned)
    assert np.allclose(np.linalg.norm(mapped, axis=1), 1.0, atol=1e-5)


def test_fit_refuses_mismatched_inputs_and_bad_settings() -> None:
    words, vectors, _ = _world(0)
    with pytest.raises(ValueError, match="one vector per public text"):
        WordRelevanceMap().fit(["waax wabx"], np.zeros((2, DIM)), words, vectors)
    with pytest.raises(ValueError, match="no public text contains"):
        WordRelevanceMap().fit(["zzz"], np.zeros((1, DIM)), words, vectors)
    with pytest.raises(ValueError, match="epochs"):
        WordRelevanceMap(epochs=0)
    with pytest.raises(RuntimeError, match="fit must run"):
        WordRelevanceMap().query(np.ones(DIM))


def test_fit_reports_each_batch_done_out_of_all() -> None:
    # Prepare: 100 usable sentences, batches of 32 over 2 epochs: 4 batches an epoch.
    words, vectors, mixing = _world(0)
    texts, embeddings = _sentences(np.random.default_rng(2), words, vectors, mixing, range(50), 100)
    seen: list[tuple[int, int]] = []
    # Execute
    WordRelevanceMap(epochs=2, batch_size=32).fit(
        texts, embeddings, words, vectors, progress=lambda done, total: seen.append((done, total))
    )
    # Assert
    assert seen == [(done, 8) for done in range(1, 9)]
