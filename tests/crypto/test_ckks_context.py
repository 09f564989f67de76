"""SEAL handles of serialized contexts: parsing, the 128-bit check, the scratch file,
the private flag and the fingerprint."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest
import tenseal as ts
import tenseal.sealapi as sealapi

from crypto.ckks_aggregation import CkksError, make_contexts
from crypto.ckks_context import (
    ScratchFile,
    context_fingerprint,
    is_private_context,
    seal_handles,
)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (payloads here are under 2^14 bytes)."""
    size = len(payload)
    length = bytes([size]) if size < 0x80 else bytes([(size & 0x7F) | 0x80, size >> 7])
    return bytes([number << 3 | 2]) + length + payload


def _context_bytes(degree: int, sizes: list[int], scale_bits: int) -> bytes:
    """A TenSEAL-format context of any parameters (no key), written field by field."""
    parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(degree)
    parms.set_coeff_modulus(sealapi.CoeffModulus.Create(degree, sizes))
    with ScratchFile() as scratch:
        parms.save(scratch.path)
        encoded = scratch.get()
    public = bytes([3 << 3 | 1]) + struct.pack("<d", 2.0**scale_bits)
    return _field(1, encoded) + _field(2, public)


def test_handles_of_secret_and_public_contexts() -> None:
    secret, public = make_contexts()
    mine = seal_handles(secret, what="context", need_secret=True)
    theirs = seal_handles(public, what="public context", need_secret=False)
    assert mine.secret_key is not None
    assert theirs.secret_key is None
    assert mine.degree == theirs.degree == 8192
    assert mine.scale == 2.0**40
    assert 59 < mine.data_modulus_log2 <= 60  # one 60-bit data prime
    with pytest.raises(CkksError, match="no secret key"):
        seal_handles(public, what="public context", need_secret=True)


def test_hand_written_context_within_the_bound_loads() -> None:
    handles = seal_handles(_context_bytes(8192, [60, 60], 40), what="ctx", need_secret=False)
    assert handles.degree == 8192
    assert handles.secret_key is None


def test_context_above_the_128_bit_bound_is_refused() -> None:
    # N = 4096 allows 109 bits; 120 bits would be below 128-bit security
    data = _context_bytes(4096, [60, 60], 40)
    with pytest.raises(CkksError, match="128-bit security"):
        seal_handles(data, what="context", need_secret=False)


@pytest.mark.parametrize("junk", [b"", b"\x00" * 64, b"\x0a\xff\xff\xff\x0f", b"not a context"])
def test_malformed_context_is_refused(junk: bytes) -> None:
    with pytest.raises(CkksError, match="context"):
        seal_handles(junk, what="context", need_secret=False)


def test_scratch_file_round_trip_and_close() -> None:
    scratch = ScratchFile()
    path = scratch.put(b"abc" * 1000)
    with open(path, "rb") as stream:
        assert stream.read() == b"abc" * 1000
    assert scratch.put(b"xy") == path
    assert scratch.get() == b"xy"
    scratch.close()
    assert not os.path.exists(path)


def _tenseal_facts(data: bytes) -> tuple[bool, str]:
    """The peer library's answer: TenSEAL parses the context and writes its public part."""
    ctx = ts.context_from(data)
    public = ctx.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    return bool(ctx.is_private()), hashlib.sha256(bytes(public)).hexdigest()


def test_private_flag_and_fingerprint_agree_with_tenseal() -> None:
    # Prepare: a key pair as provisioned, and one with Galois and relinearisation keys
    secret, public = make_contexts()
    rich = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    rich.global_scale = 2.0**40
    rich.generate_galois_keys()
    rich_secret = bytes(rich.serialize(save_secret_key=True))
    rich.make_context_public()
    rich_public = bytes(rich.serialize())

    for data in (secret, public, rich_secret, rich_public):
        # Execute
        facts = (is_private_context(data), context_fingerprint(data))

        # Assert
        assert facts == _tenseal_facts(data)
    assert context_fingerprint(secret) == context_fingerprint(public)
    assert context_fingerprint(rich_secret) == context_fingerprint(rich_public)


@pytest.mark.parametrize("part", ["parameters", "public key"])
def test_a_corrupted_context_changes_its_fingerprint_or_is_refused(part: str) -> None:
    # Prepare: one byte flipped in the parameters or in the public key
    secret, _ = make_contexts()
    at = 40 if part == "parameters" else len(secret) // 4
    corrupted = secret[:at] + bytes([secret[at] ^ 0x55]) + secret[at + 1 :]

    # Execute / Assert
    try:
        fingerprint = context_fingerprint(corrupted)
    except CkksError:
        return
    assert fingerprint != context_fingerprint(secret)
