"""The distribution-alignment attacker undoes a keyed rotation without known pairs."""

from __future__ import annotations

import numpy as np
import pytest

from attacks import audit_protections
from attacks.distribution_alignment import UNION, DistributionAlignmentAttacker
from attacks.protections import KeyedRotation

DIM = 24


def _mixture(n: int, seed: int, *, centres_seed: int = 7) -> np.ndarray:
    """Unit vectors from a skewed, anisotropic mixture (an embedding-like point cloud)."""
    centres = np.random.default_rng(centres_seed).standard_normal((12, DIM))
    centres *= np.linspace(3.0, 0.5, DIM)[None, :]
    rng = np.random.default_rng(seed)
    weights = np.linspace(2.0, 0.5, len(centres))
    labels = rng.choice(len(centres), size=n, p=weights / weights.sum())
    points = centres[labels] + 0.3 * rng.standard_normal((n, DIM))
    result: np.ndarray = points / np.linalg.norm(points, axis=1, keepdims=True)
    return result


def _mean_cosine(estimate: np.ndarray, truth: np.ndarray) -> float:
    estimate = estimate / np.linalg.norm(estimate, axis=1, keepdims=True)
    truth = truth / np.linalg.norm(truth, axis=1, keepdims=True)
    return float((estimate * truth).sum(axis=1).mean())


def test_alignment_recovers_rotated_vectors_from_in_domain_public_data() -> None:
    # Prepare
    public, private = _mixture(2000, seed=1), _mixture(800, seed=2)
    rotation = KeyedRotation(DIM, key=b"r" * 16)
    ciphertexts = rotation.protect(private)
    # Execute
    attacker = DistributionAlignmentAttacker(seed=0).fit(ciphertexts, {"public": public})
    recovered = attacker.recover(ciphertexts)
    # Assert
    assert _mean_cosine(ciphertexts, private) < 0.3  # the rotation hides the space ...
    assert _mean_cosine(recovered, private) > 0.95  # ... until the attacker aligns it


def test_alignment_ignores_a_secret_scaling_factor() -> None:
    # Prepare
    public, private = _mixture(2000, seed=1), _mixture(800, seed=2)
    ciphertexts = KeyedRotation(DIM, key=b"s" * 16).protect(private)
    # Execute
    plain = DistributionAlignmentAttacker().fit(ciphertexts, {"p": public})
    scaled = DistributionAlignmentAttacker().fit(ciphertexts * 1234.5, {"p": public})
    # Assert
    np.testing.assert_allclose(
        scaled.recover(ciphertexts * 1234.5), plain.recover(ciphertexts), atol=1e-5
    )


def test_alignment_picks_the_matching_public_source_without_plaintexts() -> None:
    # Prepare: one in-domain source, one from another distribution
    public, private = _mixture(2000, seed=1), _mixture(800, seed=2)
    elsewhere = _mixture(2000, seed=3, centres_seed=99)
    ciphertexts = KeyedRotation(DIM, key=b"t" * 16).protect(private)
    # Execute
    attacker = DistributionAlignmentAttacker().fit(
        ciphertexts, {"other domain": elsewhere, "same domain": public}
    )
    # Assert
    assert attacker.fits[0].source in {"same domain", UNION}
    assert {f.source for f in attacker.fits} == {"other domain", "same domain", UNION}
    assert _mean_cosine(attacker.recover(ciphertexts), private) > 0.9


def test_alignment_fails_with_only_out_of_domain_public_data() -> None:
    # Prepare: the control: the attack needs the target's distribution
    private, elsewhere = _mixture(800, seed=2), _mixture(2000, seed=3, centres_seed=99)
    ciphertexts = KeyedRotation(DIM, key=b"u" * 16).protect(private)
    # Execute
    attacker = DistributionAlignmentAttacker().fit(ciphertexts, {"other domain": elsewhere})
    # Assert
    assert _mean_cosine(attacker.recover(ciphertexts), private) < 0.5


def test_alignment_refuses_bad_input_and_unfitted_use() -> None:
    attacker = DistributionAlignmentAttacker()
    with pytest.raises(RuntimeError, match="fit must run"):
        attacker.recover(np.ones((2, DIM)))
    with pytest.raises(ValueError, match="at least one"):
        attacker.fit(np.ones((4, DIM)), {})
    with pytest.raises(ValueError, match="widths"):
        attacker.fit(_mixture(10, 0), {"p": np.ones((10, DIM + 1))})
    with pytest.raises(ValueError, match="finite"):
        attacker.fit(np.full((4, DIM), np.nan), {"p": _mixture(10, 0)})
    with pytest.raises(ValueError, match="iterations"):
        DistributionAlignmentAttacker(neighbours=0)
    with pytest.raises(ValueError, match="starts"):
        DistributionAlignmentAttacker(starts=())
    with pytest.raises(ValueError, match="starts"):
        DistributionAlignmentAttacker(starts=(None, 0))


def test_alignment_from_a_single_start_still_recovers_in_domain_data() -> None:
    # Prepare
    public, private = _mixture(2000, seed=1), _mixture(800, seed=2)
    ciphertexts = KeyedRotation(DIM, key=b"s" * 16).protect(private)
    # Execute
    attacker = DistributionAlignmentAttacker(starts=[8]).fit(ciphertexts, {"public": public})
    # Assert
    assert attacker.starts == (8,)
    assert _mean_cosine(attacker.recover(ciphertexts), private) > 0.9


def test_audit_alignment_view_fits_once_per_batch_and_recovers_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: count fits (the real attacker runs; the wrapper only counts).
    fits: list[int] = []
    real_fit = DistributionAlignmentAttacker.fit

    def counting_fit(self, ciphertexts, public):  # type: ignore[no-untyped-def]
        fits.append(len(ciphertexts))
        return real_fit(self, ciphertexts, public)

    monkeypatch.setattr(DistributionAlignmentAttacker, "fit", counting_fit)
    rotation = KeyedRotation(DIM, key=b"v" * 16)
    view = audit_protections._alignment_view(
        rotation.protect, {"public": _mixture(2000, seed=1)}, seed=0
    )
    batch, other = _mixture(800, seed=2), _mixture(700, seed=3)
    # Execute
    first, again = view(batch), view(batch)
    view(other)
    # Assert
    assert fits == [800, 700]
    np.testing.assert_array_equal(first, again)
    assert _mean_cosine(first, batch) > 0.95
