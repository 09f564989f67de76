"""Protections: noise has the stated scale, DCPE is Scale-And-Perturb, the KPA inverts it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attacks.known_plaintext_map import LinearMapAttacker
from attacks.protections import (
    CkksEncryptedSearch,
    DcpeProtection,
    GaussianNoise,
    KeyedRotation,
    RawEmbeddings,
)
from crypto.dcpe import DcpeCiphertext, DcpeKey, ScaleAndPerturb


def _unit(count: int, dimension: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension))
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def test_raw_is_an_unchanged_copy() -> None:
    vectors = _unit(5, 8, 0)
    protected = RawEmbeddings().protect(vectors)
    np.testing.assert_allclose(protected, vectors, rtol=1e-6)
    protected[0, 0] = 99.0
    assert vectors[0, 0] != 99.0


def test_gaussian_noise_has_the_stated_standard_deviation() -> None:
    # Prepare
    zeros = np.zeros((2000, 384))
    # Execute
    noised = GaussianNoise(0.05, seed=3, renormalise=False).protect(zeros)
    # Assert: 768,000 draws, so the sample std is within 1% of sigma.
    assert float(noised.std()) == pytest.approx(0.05, rel=0.01)
    assert abs(float(noised.mean())) < 1e-3


def test_gaussian_noise_changes_vectors_and_is_seeded() -> None:
    vectors = _unit(10, 16, 0)
    first = GaussianNoise(0.1, seed=7).protect(vectors)
    again = GaussianNoise(0.1, seed=7).protect(vectors)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, vectors.astype(np.float32))
    np.testing.assert_allclose(GaussianNoise(0.0).protect(vectors), vectors, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(0.0, 2.0), seed=st.integers(0, 2**32 - 1))
def test_gaussian_noise_renormalised_rows_have_unit_norm(sigma: float, seed: int) -> None:
    noised = GaussianNoise(sigma, seed=seed).protect(_unit(6, 12, seed % 1000))
    np.testing.assert_allclose(np.linalg.norm(noised, axis=1), 1.0, rtol=1e-5)


def test_gaussian_noise_rejects_negative_sigma() -> None:
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(-0.1)


def test_dcpe_protection_emits_scale_and_perturb_ciphertexts() -> None:
    # Prepare
    key = DcpeKey.generate(tenant="t", beta=1.0)
    plain = _unit(50, 32, 1)
    # Execute
    protected = DcpeProtection(1.0, key=key).protect(plain)
    # Assert: c = s m + lambda with ||lambda|| <= s beta / 4, as ScaleAndPerturb encrypts.
    s = key.scaling_factor
    perturbation = np.linalg.norm(protected.astype(np.float64) - s * plain, axis=1)
    assert np.all(perturbation <= s * key.beta / 4 * (1 + 1e-5))
    assert np.all(perturbation > 0)
    reference = ScaleAndPerturb(key).encrypt(plain).vectors
    assert protected.dtype == reference.dtype
    assert protected.shape == reference.shape
    # The protected vectors differ from a second encryption only by fresh perturbations.
    assert np.all(np.linalg.norm(protected - reference, axis=1) <= s * key.beta / 2 * 1.0001)


def test_dcpe_protection_ciphertexts_decrypt_under_its_key() -> None:
    protection = DcpeProtection(0.5)
    plain = _unit(20, 16, 2)
    ciphertext = protection.scheme.encrypt(plain)
    back = ScaleAndPerturb(protection.key).decrypt(
        DcpeCiphertext(ciphertext.vectors, ciphertext.nonces, ciphertext.key_id)
    )
    np.testing.assert_allclose(back, plain, atol=1e-5)
    assert protection.name == "dcpe beta=0.5"


def test_known_plaintext_linear_map_recovers_small_beta_plaintexts() -> None:
    # Prepare: the attacker holds 1000 (plaintext, ciphertext) pairs.
    protection = DcpeProtection(0.1)
    known, fresh = _unit(1000, 64, 3), _unit(200, 64, 4)
    attacker = LinearMapAttacker().fit(protection.protect(known), known)
    # Execute
    recovered = attacker.recover(protection.protect(fresh))
    # Assert: cosine to the true plaintext near 1; without the map the scale is off by s.
    cosine = np.sum(recovered * fresh, axis=1) / np.linalg.norm(recovered, axis=1)
    assert float(cosine.mean()) > 0.99
    np.testing.assert_allclose(np.linalg.norm(recovered, axis=1), 1.0, atol=0.05)


def test_known_plaintext_map_degrades_with_large_beta() -> None:
    small, large = DcpeProtection(0.1), DcpeProtection(8.0)
    known, fresh = _unit(1000, 64, 3), _unit(200, 64, 4)
    errors = []
    for protection in (small, large):
        attacker = LinearMapAttacker().fit(protection.protect(known), known)
        errors.append(float(np.abs(attacker.recover(protection.protect(fresh)) - fresh).mean()))
    assert errors[0] < errors[1]


def test_linear_map_refuses_misaligned_pairs_and_unfitted_use() -> None:
    with pytest.raises(ValueError, match="aligned"):
        LinearMapAttacker().fit(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match="fit"):
        LinearMapAttacker().recover(np.zeros((1, 4)))


def test_keyed_rotation_keeps_inner_products_and_hides_the_space() -> None:
    # Prepare
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 16))
    rotation = KeyedRotation(16, key=b"k" * 16)
    # Execute
    rotated = rotation.protect(vectors)
    # Assert: the Gram matrix is kept, the vectors themselves are not.
    np.testing.assert_allclose(rotated @ rotated.T, vectors @ vectors.T, rtol=1e-4, atol=1e-4)
    assert np.abs(rotated - vectors).max() > 0.5
    np.testing.assert_allclose(KeyedRotation(16, key=b"k" * 16).protect(vectors), rotated)


def test_a_known_plaintext_attacker_undoes_a_keyed_rotation() -> None:
    # Prepare: as many known pairs as dimensions suffice for a linear map.
    rng = np.random.default_rng(1)
    known, targets = rng.standard_normal((64, 16)), rng.standard_normal((10, 16))
    rotation = KeyedRotation(16)
    attacker = LinearMapAttacker().fit(rotation.protect(known), known)
    # Execute
    recovered = attacker.recover(rotation.protect(targets))
    # Assert
    np.testing.assert_allclose(recovered, targets, atol=1e-2)


def test_keyed_rotation_rejects_a_short_key() -> None:
    with pytest.raises(ValueError, match="key must hold"):
        KeyedRotation(8, key=b"short")


NULL_VIEWS = 200  # seeded unrelated views that give the attack's null distribution
MARGIN = 6.0  # standard deviations between the null's mean and a bound the test uses


def _mean_cosine(estimate: np.ndarray, truth: np.ndarray) -> float:
    norms = np.linalg.norm(estimate, axis=1) * np.linalg.norm(truth, axis=1)
    return float(np.mean(np.sum(estimate * truth, axis=1) / norms))


def _linear_attack(view: np.ndarray, plain: np.ndarray, known: int) -> float:
    """Fit the map on the first ``known`` pairs; mean cosine of what it recovers of the rest."""
    attacker = LinearMapAttacker().fit(view[:known], plain[:known])
    return _mean_cosine(attacker.recover(view[known:]), plain[known:])


def test_ckks_search_scores_like_plaintext_and_hides_the_vectors() -> None:
    # Prepare: vectors on a 20-dim subspace, which a linear map recovers from any view
    # that carries them (the same attacker undoes a keyed rotation).
    rng = np.random.default_rng(11)
    basis = rng.standard_normal((20, 64))
    plain = rng.standard_normal((700, 20)) @ basis + 0.05 * rng.standard_normal((700, 64))
    plain /= np.linalg.norm(plain, axis=1, keepdims=True)
    known = 500
    # The ciphertext words are random (TenSEAL's encryption randomness cannot be seeded),
    # so each run sees a fresh draw. The bounds therefore come from the null distribution,
    # that of views which carry nothing: seeded random vectors of the view's size (the
    # words scaled to [-1, 1), each row normalised, as the view is). The attack's mean
    # cosine on them has mean about 0 and standard deviation about 0.017; a view within
    # MARGIN of them is indistinguishable from noise (one false alarm in about 10^9 runs,
    # where the old fixed bound of 0.03 failed about one run in 30), while a view that
    # carries the vectors scores above 0.99, 50 standard deviations away.
    null_rng = np.random.default_rng(12)
    null = []
    for _ in range(NULL_VIEWS):
        unrelated = null_rng.uniform(-1.0, 1.0, size=plain.shape)
        unrelated /= np.linalg.norm(unrelated, axis=1, keepdims=True)
        null.append(_linear_attack(unrelated, plain, known))
    null_bound = float(np.mean(null) + MARGIN * np.std(null, ddof=1))
    # Under independence the sample correlation of N pairs has standard error 1/sqrt(N)
    # (0.0047 for 700 x 64 values): the bound is MARGIN standard errors.
    correlation_bound = MARGIN / np.sqrt(plain.size)
    ckks = CkksEncryptedSearch(64)
    rotation = KeyedRotation(64, key=b"r" * 16)

    # Execute
    view = ckks.protect(plain)
    from_ckks = _linear_attack(view, plain, known)
    from_rotation = _linear_attack(rotation.protect(plain), plain, known)
    scored: list[tuple[int, int]] = []
    scores = ckks.scores(plain[:3], plain[:50], progress=lambda *done: scored.append(done))

    # Assert: the map that undoes a rotation learns no more from the ciphertext words than
    # from noise, and the bound it is held to is far below what a carrying view gives.
    assert from_rotation > 0.99
    assert null_bound < 0.25
    assert from_ckks < null_bound
    assert abs(float(np.corrcoef(view.ravel(), plain.ravel())[0, 1])) < correlation_bound
    assert view.shape == plain.shape
    np.testing.assert_allclose(scores, plain[:3] @ plain[:50].T, atol=1e-5)
    assert scored == [(1, 3), (2, 3), (3, 3)]  # each query reported as it is scored


def test_ckks_scoring_stops_at_the_first_no_of_its_time_share() -> None:
    # Prepare: a share that allows two queries (the audit passes TimeShare.more).
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((40, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    asked: list[int] = []

    def more(done: int) -> bool:
        asked.append(done)
        return done < 2

    # Execute
    scores = CkksEncryptedSearch(16).scores(vectors[:5], vectors, more=more)
    # Assert: the first two queries' rows, asked before each and once more to stop
    assert asked == [0, 1, 2]
    np.testing.assert_allclose(scores, vectors[:2] @ vectors.T, atol=1e-5)
