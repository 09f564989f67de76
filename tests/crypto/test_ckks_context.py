"""SEAL handles of serialized contexts: parsing, the 128-bit check, the scratch file."""

from __future__ import annotations

import os
import struct

import pytest
import tenseal.sealapi as sealapi

from crypto.ckks_aggregation import CkksError, make_contexts
from crypto.ckks_context import ScratchFile, seal_handles


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
