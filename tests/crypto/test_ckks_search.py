"""CKKS encrypted inner-product search: exact scores, key separation, layout, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.ckks_search import (
    SLOTS,
    BlockLayout,
    CkksDocumentEncryptor,
    CkksInnerProductScorer,
    EncryptedBlock,
    ciphertext_words,
)
from crypto.ckks_search_key import CkksSearchKey
from crypto.errors import CryptoInputError, KeyManagementError

SCORE_TOLERANCE = 1e-5


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def key384() -> CkksSearchKey:
    return CkksSearchKey.generate(dimension=384)


def _search(key: CkksSearchKey, docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    d = key.layout.dimension
    scorer = CkksInnerProductScorer(key.evaluation_context(), dimension=d)
    for block in CkksDocumentEncryptor(key.public_context(), dimension=d).encrypt(docs):
        scorer.add_block(block)
    return np.vstack(
        [key.decrypt_scores(scorer.score(key.encrypt_query(q)), scorer.counts) for q in queries]
    )


def test_scores_equal_plaintext_inner_products_and_top10(key384: CkksSearchKey) -> None:
    # Prepare
    rng = np.random.default_rng(0)
    docs, queries = _unit(rng, 300, 384), _unit(rng, 4, 384)
    # Execute
    scores = _search(key384, docs, queries)
    # Assert
    plain = queries @ docs.T
    assert np.abs(scores - plain).max() < SCORE_TOLERANCE
    for row, truth in zip(scores, plain, strict=True):
        assert list(np.argsort(-row)[:10]) == list(np.argsort(-truth)[:10])


def test_several_blocks_and_a_width_that_skips_diagonals() -> None:
    # Prepare: width 10 gives g = 4, A = 3 (diagonals 10 and 11 do not exist); capacity
    # 4087, so 4,100 documents need two blocks, the second holding 13
    key = CkksSearchKey.generate(dimension=10)
    rng = np.random.default_rng(1)
    docs, queries = _unit(rng, 4100, 10), _unit(rng, 2, 10)
    # Execute
    encryptor = CkksDocumentEncryptor(key.public_context(), dimension=10)
    blocks = encryptor.encrypt(docs)
    scores = _search(key, docs, queries)
    # Assert
    assert [b.count for b in blocks] == [4087, 13]
    assert len(blocks[0].diagonals) == 10
    assert np.abs(scores - queries @ docs.T).max() < SCORE_TOLERANCE


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dimension=st.integers(min_value=1, max_value=40), seed=st.integers(0, 2**31 - 1))
def test_layout_covers_every_diagonal_once(dimension: int, seed: int) -> None:
    layout = BlockLayout(dimension)
    ks = [a * layout.baby + b for a, b in layout.diagonals()]
    assert sorted(ks) == list(range(dimension))
    assert all(0 < step < SLOTS for step in layout.rotation_steps())
    assert layout.capacity + dimension - 1 == SLOTS


def test_the_store_and_the_nodes_cannot_decrypt(key384: CkksSearchKey) -> None:
    # Prepare
    public = ts.context_from(key384.public_context())
    evaluation = ts.context_from(key384.evaluation_context())
    vector = ts.ckks_vector(public, [0.25] * 8)
    # Assert: neither exported context holds the secret key
    assert not public.is_private()
    assert not evaluation.is_private()
    assert not evaluation.has_public_key()
    with pytest.raises(ValueError, match="secret_key"):
        vector.decrypt()
    with pytest.raises(KeyManagementError, match="secret key"):
        CkksSearchKey.from_bytes(key384.public_context(), dimension=384)
    with pytest.raises(KeyManagementError, match="no secret key"):
        CkksDocumentEncryptor(key384.to_bytes(), dimension=384)
    with pytest.raises(KeyManagementError, match="no secret key"):
        CkksInnerProductScorer(key384.to_bytes(), dimension=384)


def test_key_round_trip_decrypts_earlier_answers(key384: CkksSearchKey) -> None:
    # Prepare
    rng = np.random.default_rng(2)
    docs, query = _unit(rng, 20, 384), _unit(rng, 1, 384)[0]
    scorer = CkksInnerProductScorer(key384.evaluation_context(), dimension=384)
    for block in CkksDocumentEncryptor(key384.public_context(), dimension=384).encrypt(docs):
        scorer.add_block(block)
    answer = scorer.score(key384.encrypt_query(query))
    # Execute
    reloaded = CkksSearchKey.from_bytes(key384.to_bytes(), dimension=384)
    # Assert
    assert np.abs(reloaded.decrypt_scores(answer, scorer.counts) - docs @ query).max() < 1e-5


def test_encryption_is_randomised_and_words_look_uniform(key384: CkksSearchKey) -> None:
    # Prepare
    encryptor = CkksDocumentEncryptor(key384.public_context(), dimension=384)
    docs = np.zeros((3, 384))
    docs[:, 0] = 1.0
    # Execute
    first, second = encryptor.encrypt_block(docs), encryptor.encrypt_block(docs)
    words = ciphertext_words(encryptor.public_context, first.diagonals[0])
    # Assert: same plaintext, different ciphertexts; words spread over [-1, 1)
    assert first.diagonals[0] != second.diagonals[0]
    assert -1.0 <= words.min() < -0.9
    assert 0.9 < words.max() < 1.0
    assert abs(float(words.mean())) < 0.05


@pytest.mark.parametrize(
    ("vectors", "match"),
    [
        (np.zeros((2, 5)), "shape"),
        (np.full((2, 384), np.nan), "NaN"),
        (np.full((2, 384), 1.0), "norms"),
    ],
)
def test_bad_vectors_are_refused(key384: CkksSearchKey, vectors: np.ndarray, match: str) -> None:
    encryptor = CkksDocumentEncryptor(key384.public_context(), dimension=384)
    with pytest.raises(CryptoInputError, match=match) as info:
        encryptor.encrypt(vectors)
    assert "Fix:" in str(info.value)
    with pytest.raises(CryptoInputError, match=match):
        key384.encrypt_query(vectors[0])


def test_bad_blocks_queries_and_contexts_are_refused(key384: CkksSearchKey) -> None:
    # Prepare
    scorer = CkksInnerProductScorer(key384.evaluation_context(), dimension=384)
    encryptor = CkksDocumentEncryptor(key384.public_context(), dimension=384)
    block = encryptor.encrypt_block(_unit(np.random.default_rng(3), 2, 384))
    # Assert
    with pytest.raises(CryptoInputError, match="diagonals"):
        scorer.add_block(type(block)(count=2, diagonals=block.diagonals[:5]))
    with pytest.raises(CryptoInputError, match="not a CKKS ciphertext"):
        scorer.add_block(type(block)(count=2, diagonals=(b"junk", *block.diagonals[1:])))
    with pytest.raises(CryptoInputError, match="not a CKKS ciphertext"):
        scorer.score(b"not a query")
    with pytest.raises(CryptoInputError, match="between 1 and"):
        encryptor.encrypt_block(np.zeros((0, 384)))
    with pytest.raises(CryptoInputError, match="one score vector per block"):
        key384.decrypt_scores([b"x"], [1, 2])
    with pytest.raises(KeyManagementError, match="could not be read"):
        CkksInnerProductScorer(b"garbage", dimension=384)
    with pytest.raises(CryptoInputError, match="width"):
        BlockLayout(SLOTS)


@settings(max_examples=50, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=5000),
    diagonals=st.lists(st.binary(max_size=64), max_size=6),
)
def test_block_framing_round_trips(count: int, diagonals: list[bytes]) -> None:
    block = EncryptedBlock(count=count, diagonals=tuple(diagonals))
    assert EncryptedBlock.from_bytes(block.to_bytes()) == block


@pytest.mark.parametrize("cut", [0, 5, 20, -1])
def test_truncated_or_foreign_framing_is_refused(cut: int) -> None:
    data = EncryptedBlock(count=2, diagonals=(b"abc", b"defg")).to_bytes()
    broken = data[:cut] if cut >= 0 else data + b"x"
    with pytest.raises(CryptoInputError, match="malformed") as info:
        EncryptedBlock.from_bytes(broken)
    assert "Fix:" in str(info.value)
