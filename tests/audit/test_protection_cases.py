"""The audit's attacker views of a protection, and the index section it reports."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from attacks.protections import KeyedRotation
from audit.protection_cases import DeployedProtection, alignment_view, known_plaintext_view
from crypto.dcpe import DcpeKey
from tests.attacks.point_clouds import DIM, mean_cosine, mixture

FITTED = "alignment: fitted on"


def test_alignment_view_fits_once_per_batch_and_recovers_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare
    rotation = KeyedRotation(DIM, key=b"v" * 16)
    view = alignment_view(rotation.protect, {"public": mixture(2000, seed=1)}, seed=0)
    batch, other = mixture(800, seed=2), mixture(700, seed=3)
    caplog.set_level(logging.INFO, logger="attacks.distribution_alignment")
    # Execute
    first, again = view(batch), view(batch)
    view(other)
    # Assert: one fit per distinct batch, the same answer for the same batch.
    fits = [r for r in caplog.records if r.getMessage().startswith(FITTED)]
    assert len(fits) == 2
    np.testing.assert_array_equal(first, again)
    assert mean_cosine(first, batch) > 0.95


def test_known_plaintext_view_undoes_a_keyed_rotation() -> None:
    # Prepare: more known pairs than dimensions pin a linear map down.
    rotation = KeyedRotation(DIM, key=b"k" * 16)
    known, targets = mixture(4 * DIM, seed=4), mixture(200, seed=5)
    # Execute
    view = known_plaintext_view(rotation.protect, known)
    # Assert
    assert mean_cosine(rotation.protect(targets), targets) < 0.3
    assert mean_cosine(view(targets), targets) > 0.99


def test_without_deployed_keys_the_index_section_says_encryption_at_rest_only() -> None:
    # Execute
    section = DeployedProtection().describe(None)
    # Assert
    assert section["collections"] == [
        {"name": "all collections", "protection": "at-rest", "beta": None}
    ]
    assert section["keyring"] is None
    assert section["ckks_key"] is None


def test_the_index_section_names_the_dcpe_key_but_never_its_secrets() -> None:
    # Prepare
    key = DcpeKey.generate(tenant="consortium", beta=2.0)
    # Execute
    section = DeployedProtection(key=key).describe(None)
    # Assert
    (collection,) = section["collections"]
    assert collection["protection"] == "dcpe"
    assert collection["beta"] == 2.0
    assert collection["key_id"] == key.key_id
    text = json.dumps(section)
    assert key.prf_key.hex() not in text
    assert repr(key.scaling_factor) not in text
