"""Rounding a CKKS decryption: the grid sits far above the decryption error it removes."""

from __future__ import annotations

import numpy as np
import pytest

from crypto.ckks_aggregation import (
    CkksParameters,
    decrypt_vector,
    encrypt_vector,
    make_contexts,
    sum_encrypted,
)
from crypto.ckks_decryption_rounding import decryption_grid, round_decryption


def test_the_grid_is_2_to_the_minus_16_at_the_default_scale() -> None:
    assert decryption_grid(CkksParameters().global_scale_bits) == 2.0**-16


def test_rounding_removes_the_ckks_error_of_a_sum() -> None:
    # Prepare: five nodes' updates that already lie on the grid (so the exact sum does too).
    rng = np.random.default_rng(7)
    grid = decryption_grid(CkksParameters().global_scale_bits)
    secret, public = make_contexts()
    updates = [np.round(rng.normal(0.0, 0.05, 600) / grid) * grid for _ in range(5)]
    exact = np.sum(updates, axis=0)
    summed = sum_encrypted([encrypt_vector(u, secret) for u in updates], public)
    raw = decrypt_vector(summed, secret, exact.size)

    # Execute
    released = round_decryption(raw, scale_bits=CkksParameters().global_scale_bits)

    # Assert: the raw decryption carries an error far below the grid (64x margin), and
    # the released values are the exact sum, bit for bit: the error is gone.
    error = np.max(np.abs(raw - exact))
    assert 0 < error < grid / 64
    np.testing.assert_array_equal(released, exact)


def test_the_grid_needs_a_positive_scale() -> None:
    with pytest.raises(ValueError, match="positive"):
        decryption_grid(0)
