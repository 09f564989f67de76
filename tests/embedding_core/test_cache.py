from __future__ import annotations

from pathlib import Path

import numpy as np

from embedding_core.cache import EmbeddingCache
from embedding_core.encoder import Encoder

TEXTS = [f"Document number {i} talks about topic {i % 7}." for i in range(40)]


def test_second_lookup_is_a_hit_and_identical(encoder: Encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    first = cache.get_or_encode(encoder, TEXTS)
    reopened = EmbeddingCache(tmp_path)

    second = reopened.get_or_encode(encoder, TEXTS)

    assert (cache.stats.hits, cache.stats.misses) == (0, 1)
    assert (reopened.stats.hits, reopened.stats.misses) == (1, 0)  # read back, not encoded
    np.testing.assert_array_equal(first, second)
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_changed_text_or_setting_misses(encoder: Encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.get_or_encode(encoder, TEXTS)

    cache.get_or_encode(encoder, [*TEXTS[:-1], TEXTS[-1] + "!"])
    cache.get_or_encode(encoder, TEXTS, normalize=False)
    cache.get_or_encode(encoder, TEXTS[::-1])
    cache.get_or_encode(encoder, TEXTS)

    assert cache.stats.misses == 4
    assert cache.stats.hits == 1


def test_text_boundaries_are_part_of_the_key(encoder: Encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)

    assert cache.key(encoder, ["ab", "c"], normalize=True) != cache.key(
        encoder, ["a", "bc"], normalize=True
    )


def test_corrupt_entry_is_re_encoded_not_fatal(encoder: Encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    expected = cache.get_or_encode(encoder, TEXTS)
    (entry,) = tmp_path.glob("*.npy")
    entry.write_bytes(b"garbage")

    again = EmbeddingCache(tmp_path)
    vectors = again.get_or_encode(encoder, TEXTS)

    assert again.stats.misses == 1
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert np.load(entry).shape == expected.shape


def test_clear_removes_entries(encoder: Encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.get_or_encode(encoder, TEXTS[:3])

    assert cache.clear() == 1
    assert not list(tmp_path.glob("*.npy"))
