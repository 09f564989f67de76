"""The per-text embedding cache: reuse across lists, never across vector spaces."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from embedding_core.cache import CACHE_FILE, EmbeddingCache, text_key
from embedding_core.encoder import Encoder

TEXTS = [f"Document number {i} talks about topic {i % 7}." for i in range(40)]


def _count_encoded(encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many texts each real ``encoder.encode`` call receives."""
    calls: list[int] = []
    real = encoder.encode

    def counting(texts: Sequence[str], **kwargs: object) -> NDArray[np.float32]:
        calls.append(len(texts))
        return real(texts, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(encoder, "encode", counting)
    return calls


def test_second_lookup_is_a_hit_and_identical(encoder: Encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    first = cache.get_or_encode(encoder, TEXTS)
    reopened = EmbeddingCache(tmp_path)

    second = reopened.get_or_encode(encoder, TEXTS)

    assert (cache.stats.hits, cache.stats.misses) == (0, len(TEXTS))
    assert (reopened.stats.hits, reopened.stats.misses) == (len(TEXTS), 0)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, encoder.encode(TEXTS), atol=1e-6)
    assert len(reopened) == len(TEXTS)


def test_only_texts_never_encoded_are_encoded(
    encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    cache = EmbeddingCache(tmp_path)
    cache.get_or_encode(encoder, TEXTS[:25])
    calls = _count_encoded(encoder, monkeypatch)
    superset = [*TEXTS[30:], *TEXTS[::-1]]  # another order, 15 new texts, duplicates
    # Execute
    vectors = cache.get_or_encode(encoder, superset)
    again = cache.get_or_encode(encoder, TEXTS[5:20])
    # Assert
    assert calls == [15]
    assert cache.stats.misses == 25 + 15
    np.testing.assert_allclose(vectors, encoder.encode(superset), atol=1e-6)
    np.testing.assert_allclose(again, vectors[len(TEXTS[30:]) :][::-1][5:20], atol=1e-6)


def test_duplicates_in_one_list_are_encoded_once(
    encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_encoded(encoder, monkeypatch)

    vectors = EmbeddingCache(tmp_path).get_or_encode(encoder, ["same", "other", "same"])

    assert calls == [2]
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_backends_never_share_entries(
    encoder: Encoder, int8_encoder: Encoder, tmp_path: Path
) -> None:
    # Prepare
    texts = TEXTS[:6]
    cache = EmbeddingCache(tmp_path)
    torch_vectors = cache.get_or_encode(encoder, texts)
    # Execute
    int8_vectors = cache.get_or_encode(int8_encoder, texts)
    # Assert: the int8 lookup found nothing of torch's; two entries per text
    assert (cache.stats.hits, cache.stats.misses) == (0, 2 * len(texts))
    assert len(cache) == 2 * len(texts)
    assert not np.allclose(int8_vectors, torch_vectors, atol=1e-6)
    np.testing.assert_allclose(int8_vectors, int8_encoder.encode(texts), atol=1e-6)
    np.testing.assert_array_equal(cache.get_or_encode(encoder, texts), torch_vectors)


def test_normalisation_is_part_of_the_key(encoder: Encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.get_or_encode(encoder, TEXTS[:4])

    cache.get_or_encode(encoder, TEXTS[:4], normalize=False)

    assert (cache.stats.hits, cache.stats.misses) == (0, 8)


def test_a_damaged_cache_file_is_bypassed_not_fatal(
    encoder: Encoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / CACHE_FILE).write_bytes(b"not a database" * 100)

    with caplog.at_level(logging.WARNING, logger="embedding_core.cache"):
        vectors = EmbeddingCache(tmp_path).get_or_encode(encoder, TEXTS[:3])

    np.testing.assert_allclose(vectors, encoder.encode(TEXTS[:3]), atol=1e-6)
    assert "unreadable" in caplog.text
    assert TEXTS[0] not in caplog.text


def test_old_whole_list_entries_are_ignored_and_cleared(encoder: Encoder, tmp_path: Path) -> None:
    # Prepare: an entry of the earlier format, full of wrong vectors
    np.save(tmp_path / ("0" * 64 + ".npy"), np.zeros((3, 384), dtype=np.float32))
    cache = EmbeddingCache(tmp_path)
    # Execute
    vectors = cache.get_or_encode(encoder, TEXTS[:3])
    removed = cache.clear()
    # Assert
    assert cache.stats.misses == 3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert removed == 1 + 3
    assert len(cache) == 0
    assert not list(tmp_path.glob("*.npy"))


@settings(max_examples=25, deadline=None)
@given(
    texts=st.lists(st.text(max_size=40), min_size=1, max_size=12, unique=True),
    seed=st.integers(0, 2**32 - 1),
    normalize=st.booleans(),
)
def test_stored_vectors_read_back_exactly(texts: list[str], seed: int, normalize: bool) -> None:
    # Prepare
    vectors = np.random.default_rng(seed).normal(size=(len(texts), 8)).astype(np.float32)
    keys = [text_key(t) for t in texts]
    with tempfile.TemporaryDirectory() as folder:
        cache = EmbeddingCache(folder)
        # Execute
        cache.store("space-a", keys, vectors, normalize=normalize)
        found = cache.lookup("space-a", keys, normalize=normalize, dimension=8)
        other_space = cache.lookup("space-b", keys, normalize=normalize, dimension=8)
        other_setting = cache.lookup("space-a", keys, normalize=not normalize, dimension=8)
    # Assert
    np.testing.assert_array_equal(np.stack([found[k] for k in keys]), vectors)
    assert other_space == {}
    assert other_setting == {}
