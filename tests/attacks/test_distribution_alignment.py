"""The distribution-alignment attacker undoes a keyed rotation without known pairs."""

from __future__ import annotations

import numpy as np
import pytest

from attacks.distribution_alignment import UNION, DistributionAlignmentAttacker
from attacks.protections import KeyedRotation
from tests.attacks.point_clouds import DIM, mean_cosine, mixture


def test_alignment_recovers_rotated_vectors_from_in_domain_public_data() -> None:
    # Prepare
    public, private = mixture(2000, seed=1), mixture(800, seed=2)
    rotation = KeyedRotation(DIM, key=b"r" * 16)
    ciphertexts = rotation.protect(private)
    # Execute
    attacker = DistributionAlignmentAttacker(seed=0).fit(ciphertexts, {"public": public})
    recovered = attacker.recover(ciphertexts)
    # Assert
    assert mean_cosine(ciphertexts, private) < 0.3  # the rotation hides the space ...
    assert mean_cosine(recovered, private) > 0.95  # ... until the attacker aligns it


def test_alignment_ignores_a_secret_scaling_factor() -> None:
    # Prepare
    public, private = mixture(2000, seed=1), mixture(800, seed=2)
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
    public, private = mixture(2000, seed=1), mixture(800, seed=2)
    elsewhere = mixture(2000, seed=3, centres_seed=99)
    ciphertexts = KeyedRotation(DIM, key=b"t" * 16).protect(private)
    # Execute
    attacker = DistributionAlignmentAttacker().fit(
        ciphertexts, {"other domain": elsewhere, "same domain": public}
    )
    # Assert
    assert attacker.fits[0].source in {"same domain", UNION}
    assert {f.source for f in attacker.fits} == {"other domain", "same domain", UNION}
    assert mean_cosine(attacker.recover(ciphertexts), private) > 0.9


def test_alignment_fails_with_only_out_of_domain_public_data() -> None:
    # Prepare: the control: the attack needs the target's distribution
    private, elsewhere = mixture(800, seed=2), mixture(2000, seed=3, centres_seed=99)
    ciphertexts = KeyedRotation(DIM, key=b"u" * 16).protect(private)
    # Execute
    attacker = DistributionAlignmentAttacker().fit(ciphertexts, {"other domain": elsewhere})
    # Assert
    assert mean_cosine(attacker.recover(ciphertexts), private) < 0.5


def test_alignment_refuses_bad_input_and_unfitted_use() -> None:
    attacker = DistributionAlignmentAttacker()
    with pytest.raises(RuntimeError, match="fit must run"):
        attacker.recover(np.ones((2, DIM)))
    with pytest.raises(ValueError, match="at least one"):
        attacker.fit(np.ones((4, DIM)), {})
    with pytest.raises(ValueError, match="widths"):
        attacker.fit(mixture(10, 0), {"p": np.ones((10, DIM + 1))})
    with pytest.raises(ValueError, match="finite"):
        attacker.fit(np.full((4, DIM), np.nan), {"p": mixture(10, 0)})
    with pytest.raises(ValueError, match="iterations"):
        DistributionAlignmentAttacker(neighbours=0)
    with pytest.raises(ValueError, match="starts"):
        DistributionAlignmentAttacker(starts=())
    with pytest.raises(ValueError, match="starts"):
        DistributionAlignmentAttacker(starts=(None, 0))


def test_alignment_from_a_single_start_still_recovers_in_domain_data() -> None:
    # Prepare
    public, private = mixture(2000, seed=1), mixture(800, seed=2)
    ciphertexts = KeyedRotation(DIM, key=b"s" * 16).protect(private)
    # Execute
    attacker = DistributionAlignmentAttacker(starts=[8]).fit(ciphertexts, {"public": public})
    # Assert
    assert attacker.starts == (8,)
    assert mean_cosine(attacker.recover(ciphertexts), private) > 0.9
