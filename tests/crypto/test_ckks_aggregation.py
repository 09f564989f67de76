from __future__ import annotations

import contextlib

import numpy as np
import pytest
import tenseal as ts
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from crypto.ckks_aggregation import (
    CHUNK_MAGIC,
    CkksError,
    CkksParameters,
    context_fingerprint,
    decrypt_sum,
    decrypt_vector,
    encrypt_vector,
    make_contexts,
    max_abs_sum,
    num_chunks,
    slot_count,
    sum_encrypted,
)
from crypto.ckks_context import seal_handles
from embedding_core.errors import FedembedError

ADAPTER_SIZE = 384 * 384 + 384  # 147,840: the full adapter's parameter count


@pytest.fixture(scope="module")
def contexts() -> tuple[bytes, bytes]:
    return make_contexts()


# -- parameters --------------------------------------------------------------------------


def test_default_parameters() -> None:
    params = CkksParameters()
    assert params.poly_modulus_degree == 8192
    assert params.coeff_mod_bit_sizes == (60, 60)
    assert params.global_scale_bits == 40
    assert params.slot_count == 4096
    assert params.values_per_ciphertext == 8192
    assert num_chunks(ADAPTER_SIZE, params) == 19


def test_parameters_round_trip_and_list_is_coerced() -> None:
    params = CkksParameters(16384, [60, 40, 40, 40, 60], 40)  # type: ignore[arg-type]
    assert params.coeff_mod_bit_sizes == (60, 40, 40, 40, 60)
    assert CkksParameters.from_dict(params.as_dict()) == params
    hash(params)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"poly_modulus_degree": 5000}, "poly_modulus_degree 5000"),
        ({"poly_modulus_degree": "8192"}, "poly_modulus_degree"),
        ({"coeff_mod_bit_sizes": (60, 60, 60, 60)}, "128-bit-security"),
        ({"coeff_mod_bit_sizes": (60,)}, "coeff_mod_bit_sizes"),
        ({"coeff_mod_bit_sizes": (60, 70, 60)}, "coeff_mod_bit_sizes"),
        ({"coeff_mod_bit_sizes": 60}, "coeff_mod_bit_sizes"),
        ({"global_scale_bits": 10}, "global_scale_bits"),
        ({"coeff_mod_bit_sizes": (30, 30), "global_scale_bits": 25}, "integer part"),
    ],
)
def test_invalid_parameters_are_rejected(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(CkksError, match=fragment) as info:
        CkksParameters(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, FedembedError)
    assert "Expected:" in str(info.value)


def test_from_dict_rejects_missing_keys() -> None:
    with pytest.raises(CkksError, match="malformed"):
        CkksParameters.from_dict({"poly_modulus_degree": 8192})


# -- contexts ----------------------------------------------------------------------------


def test_contexts_secret_and_public(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    assert ts.context_from(secret).is_private()
    assert not ts.context_from(public).is_private()
    assert slot_count(public) == 4096
    assert context_fingerprint(secret) == context_fingerprint(public)
    assert context_fingerprint(make_contexts()[1]) != context_fingerprint(public)


def test_small_parameters_work() -> None:
    secret, public = make_contexts(CkksParameters(4096, (60, 40), 30))
    assert slot_count(secret) == 2048
    x = np.linspace(-1, 1, 5000)
    total = sum_encrypted([encrypt_vector(x, secret)] * 2, public)
    assert len(total) == 2  # 4096 values per ciphertext
    np.testing.assert_allclose(decrypt_vector(total, secret, x.size), 2 * x, atol=1e-3)


# -- aggregation -------------------------------------------------------------------------


def test_sum_of_three_adapter_sized_updates(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    rng = np.random.default_rng(0)
    updates = [rng.normal(0, 0.05, ADAPTER_SIZE).astype(np.float32) for _ in range(3)]

    encrypted = [encrypt_vector(u, secret, summands=3) for u in updates]
    assert all(len(e) == 19 for e in encrypted)
    total = sum_encrypted(encrypted, public)
    decrypted = decrypt_vector(total, secret, ADAPTER_SIZE)

    assert decrypted.dtype == np.float64
    assert decrypted.shape == (ADAPTER_SIZE,)
    expected = np.sum([u.astype(np.float64) for u in updates], axis=0)
    # Secret-key encryption: about 2e-9 measured (public-key encryption gave 1.8e-8).
    assert np.max(np.abs(decrypted - expected)) < 1e-8
    np.testing.assert_array_equal(decrypt_sum(encrypted, secret, ADAPTER_SIZE), decrypted)


def test_weighted_mean(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    a, b = np.full(10, 1.0), np.full(10, 4.0)
    total = sum_encrypted(
        [encrypt_vector(a, secret, scale=3.0), encrypt_vector(b, secret, scale=1.0)], public
    )
    mean = decrypt_vector(total, secret, 10) / 4.0
    np.testing.assert_allclose(mean, 1.75, atol=1e-6)


def test_coordinator_cannot_decrypt(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    chunks = encrypt_vector(np.arange(8, dtype=np.float64), secret)
    with pytest.raises(CkksError, match="no secret key"):
        decrypt_vector(chunks, public, 8)
    with pytest.raises(CkksError, match="no secret key"):
        decrypt_sum([chunks], public, 8)
    # and the public context holds no key a decryptor could be made from
    assert seal_handles(public, what="public context", need_secret=False).secret_key is None
    assert not ts.context_from(public).is_private()


@settings(max_examples=20, deadline=None)
@given(
    values=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=st.integers(1, 300),
        elements=st.floats(-1e3, 1e3, width=32),
    ),
    scale=st.floats(-10, 10),
)
def test_round_trip_hypothesis(
    contexts: tuple[bytes, bytes], values: np.ndarray, scale: float
) -> None:
    secret, public = contexts
    chunks = encrypt_vector(values, secret, scale=scale)
    total = sum_encrypted([chunks], public)
    out = decrypt_vector(total, secret, values.size)
    np.testing.assert_allclose(out, values.astype(np.float64) * scale, atol=1e-3)


def test_multi_dimensional_input_is_flattened(contexts: tuple[bytes, bytes]) -> None:
    secret, _ = contexts
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = decrypt_vector(encrypt_vector(matrix, secret), secret, 12)
    np.testing.assert_allclose(out, matrix.ravel(), atol=1e-5)


# -- malformed input -----------------------------------------------------------------------


def _garbage_variants(valid: bytes) -> list[object]:
    rng = np.random.default_rng(1)
    flipped = bytearray(valid)
    flipped[8] ^= 0xFF
    return [
        b"",
        b"garbage",
        rng.bytes(5000),
        valid[:100],
        valid[: len(valid) // 2],
        bytes(flipped),
        bytes(len(valid)),
        "not bytes",
        None,
    ]


def test_garbage_ciphertexts_raise_ckks_error(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    good = encrypt_vector(np.ones(10), secret)
    for junk in _garbage_variants(good[0]):
        with pytest.raises(CkksError, match="update 1, chunk 0"):
            sum_encrypted([good, [junk]], public)  # type: ignore[list-item]
        with pytest.raises(CkksError, match="chunk 0"):
            decrypt_vector([junk], secret, 10)  # type: ignore[list-item]


def test_random_bit_flips_never_crash(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    good = encrypt_vector(np.ones(10), secret)[0]
    rng = np.random.default_rng(2)
    for _ in range(40):
        bad = bytearray(good)
        pos = int(rng.integers(0, 256 if rng.random() < 0.5 else len(bad)))
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        # a flip inside the coefficients may still load; it must never crash the process
        with contextlib.suppress(CkksError):
            sum_encrypted([[good], [bytes(bad)]], public)


def test_garbage_context_raises_ckks_error() -> None:
    for junk in [b"", b"\x00" * 100, b"not a context at all"]:
        with pytest.raises(CkksError, match="context"):
            encrypt_vector(np.ones(3), junk)
        with pytest.raises(CkksError, match="context"):
            sum_encrypted([[b"x"]], junk)


def test_mismatched_updates_are_rejected(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    short = encrypt_vector(np.ones(10), secret)
    longer = encrypt_vector(np.ones(11), secret)
    two_chunks = encrypt_vector(np.ones(9000), secret)
    with pytest.raises(CkksError, match="chunk counts"):
        sum_encrypted([short, two_chunks], public)
    with pytest.raises(CkksError, match="update 1, chunk 0 holds 11 values"):
        sum_encrypted([short, longer], public)
    with pytest.raises(CkksError, match="no updates"):
        sum_encrypted([], public)
    with pytest.raises(CkksError, match="chunk counts"):
        sum_encrypted([[]], public)
    # a short ciphertext in a non-final position
    with pytest.raises(CkksError, match="chunk 0 holds 10 values"):
        sum_encrypted([[short[0], two_chunks[1]]], public)


def test_decrypt_rejects_wrong_length(contexts: tuple[bytes, bytes]) -> None:
    secret, _ = contexts
    chunks = encrypt_vector(np.ones(10), secret)
    with pytest.raises(CkksError, match="holds 10 values"):
        decrypt_vector(chunks, secret, 9)
    with pytest.raises(CkksError, match="1 chunks for 9000 values"):
        decrypt_vector(chunks, secret, 9000)
    with pytest.raises(CkksError, match="length"):
        decrypt_vector(chunks, secret, 0)


def test_invalid_plaintext_is_rejected(contexts: tuple[bytes, bytes]) -> None:
    secret, _ = contexts
    with pytest.raises(CkksError, match="NaN or infinite"):
        encrypt_vector(np.array([1.0, np.nan]), secret)
    with pytest.raises(CkksError, match="NaN or infinite"):
        encrypt_vector(np.array([1e308]), secret, scale=1e10)
    with pytest.raises(CkksError, match="empty"):
        encrypt_vector(np.array([]), secret)
    with pytest.raises(CkksError, match="scale"):
        encrypt_vector(np.ones(2), secret, scale=float("inf"))
    with pytest.raises(CkksError, match="not numeric"):
        encrypt_vector(np.array(["a", "b"]), secret)


# -- format 2: parameters, seeded secret-key ciphertexts, room for the sum ---------------


def test_fresh_chunks_are_seeded_and_sums_are_not(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    fresh = encrypt_vector(np.ones(8192), secret)
    (summed,) = sum_encrypted([fresh, fresh], public)
    # one 60-bit prime: a full ciphertext holds two polynomials of 8192 words; a fresh,
    # seeded one only the first (the second is regenerated from its seed)
    assert fresh[0][:4] == CHUNK_MAGIC
    assert 8192 * 8 < len(fresh[0]) < 8192 * 8 * 1.1
    assert 2 * 8192 * 8 < len(summed) < 2 * 8192 * 8 * 1.1


def test_encryption_needs_the_secret_key(contexts: tuple[bytes, bytes]) -> None:
    _, public = contexts
    with pytest.raises(CkksError, match="no secret key"):
        encrypt_vector(np.ones(4), public)


def test_old_format_chunk_is_refused_clearly(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    # what a node of an older fedembed sent: one TenSEAL vector of N/2 values per chunk
    old = ts.ckks_vector(ts.context_from(secret), [1.0, 2.0, 3.0]).serialize()
    good = encrypt_vector(np.ones(3), secret)
    with pytest.raises(CkksError, match="older fedembed"):
        sum_encrypted([good, [old]], public)
    with pytest.raises(CkksError, match="older fedembed"):
        decrypt_vector([old], secret, 3)


def test_chunk_of_other_parameters_is_refused(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    old_secret, _ = make_contexts(CkksParameters(8192, (60, 40, 40, 60), 40))
    foreign = encrypt_vector(np.ones(3), old_secret)
    with pytest.raises(CkksError, match="update 1, chunk 0 is not a valid ciphertext"):
        sum_encrypted([encrypt_vector(np.ones(3), secret), foreign], public)
    with pytest.raises(CkksError, match="not a valid ciphertext"):
        decrypt_vector(foreign, secret, 3)


def test_kits_with_the_old_parameters_still_work() -> None:
    secret, public = make_contexts(CkksParameters(8192, (60, 40, 40, 60), 40))
    rng = np.random.default_rng(3)
    updates = [rng.normal(0, 1.0, 9000) for _ in range(3)]
    encrypted = [encrypt_vector(u, secret, summands=3) for u in updates]
    assert [len(e) for e in encrypted] == [2, 2, 2]
    total = decrypt_vector(sum_encrypted(encrypted, public), secret, 9000)
    assert np.max(np.abs(total - np.sum(updates, axis=0))) < 1e-8


def test_values_beyond_the_room_are_refused(contexts: tuple[bytes, bytes]) -> None:
    secret, public = contexts
    room = max_abs_sum(public)
    with pytest.raises(CkksError, match="summed contributions may hold"):
        encrypt_vector(np.array([0.0, room / 3 * 1.01]), secret, summands=3)
    within = np.array([-room / 3 * 0.99, 1.0])
    np.testing.assert_allclose(
        decrypt_vector(encrypt_vector(within, secret, summands=3), secret, 2), within, atol=1e-6
    )
    # two nodes that each claimed the whole room: their sum is never released
    big = encrypt_vector(np.array([0.9 * room, 1.0]), secret)
    with pytest.raises(CkksError, match="not released"):
        decrypt_sum([big, big], secret, 2)
    with pytest.raises(CkksError, match="not released"):
        decrypt_vector(sum_encrypted([big, big], public), secret, 2)


@pytest.mark.parametrize("summands", [0, -1, True, 2.0])
def test_bad_summands_are_rejected(contexts: tuple[bytes, bytes], summands: object) -> None:
    secret, _ = contexts
    with pytest.raises(CkksError, match="summands"):
        encrypt_vector(np.ones(2), secret, summands=summands)  # type: ignore[arg-type]
