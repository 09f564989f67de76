"""The consortium's CKKS parameters: the 128-bit-security bound, the defaults' room."""

from __future__ import annotations

import math

import pytest
import tenseal.sealapi as sealapi

from crypto.ckks_aggregation import (
    MAX_COEFF_MODULUS_BITS,
    CkksError,
    CkksParameters,
    make_contexts,
    max_abs_sum,
)
from crypto.ckks_decryption_rounding import decryption_grid


def test_bound_table_is_seals_128_bit_table() -> None:
    # Prepare / Execute: SEAL's own HomomorphicEncryption.org table at 128-bit security
    seal = {
        n: sealapi.CoeffModulus.MaxBitCount(n, sealapi.SEC_LEVEL_TYPE.TC128)
        for n in MAX_COEFF_MODULUS_BITS
    }
    # Assert
    assert dict(MAX_COEFF_MODULUS_BITS) == seal


@pytest.mark.parametrize(
    ("degree", "sizes"),
    [(8192, (60, 60, 60, 60)), (4096, (60, 60)), (2048, (30, 30)), (1024, (20, 20))],
)
def test_parameters_above_the_bound_are_refused(degree: int, sizes: tuple[int, ...]) -> None:
    assert sum(sizes) > MAX_COEFF_MODULUS_BITS[degree]
    with pytest.raises(CkksError, match="128-bit-security"):
        CkksParameters(degree, sizes, 20)


def test_defaults_one_data_prime_within_the_bound() -> None:
    params = CkksParameters()
    # one data prime and SEAL's key-switching prime, far below the bound for N = 8192
    assert params.coeff_mod_bit_sizes == (60, 60)
    assert sum(params.coeff_mod_bit_sizes) <= MAX_COEFF_MODULUS_BITS[8192] - 90
    # the scale, hence the decryption grid, is unchanged
    assert params.global_scale_bits == 40
    assert decryption_grid(params.global_scale_bits) == 2.0**-16


def test_room_for_the_sum_follows_the_data_modulus() -> None:
    secret, public = make_contexts()
    # q ~ 2^60, scale 2^40: |sum| <= 2^17.5 (factor 2 margin below q/2, two values a slot)
    assert max_abs_sum(public) == pytest.approx(2.0**17.5, rel=1e-9)
    assert max_abs_sum(secret) == max_abs_sum(public)
    _, old = make_contexts(CkksParameters(8192, (60, 40, 40, 60), 40))
    assert math.log2(max_abs_sum(old)) > 90
