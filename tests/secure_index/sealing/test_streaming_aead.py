"""Streaming AEAD: round trips over segment sizes and chunkings, the documented
construction, and refusal of every truncation, reordering and modification."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_index.sealing.aead import DecryptionError
from secure_index.sealing.streaming_aead import (
    SEGMENT_SIZE,
    SEGMENT_TAG_SIZE,
    StreamingAead,
    StreamParameters,
    ciphertext_length,
    segment_count,
)

KEY = bytes(range(32))
AD = b"tenant/collection/index"


def _stream(segment_size: int, ad: bytes = AD, key: bytes = KEY) -> StreamingAead:
    params = StreamParameters(bytes(range(32, 64)), b"prefix7", segment_size)
    return StreamingAead(key, params, ad)


def _split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        yield data[start:point]
        start = point


def _decrypt_all(stream: StreamingAead, ciphertext: bytes, length: int) -> dict[str, bytes]:
    """Plaintext through every decryption path."""
    into = bytearray(length)
    stream.decrypt_into(ciphertext, memoryview(into))
    from_file = bytearray(length)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c"
        path.write_bytes(b"HEAD" + ciphertext)
        fd = os.open(path, os.O_RDONLY)
        try:
            stream.decrypt_file_into(fd, 4, memoryview(from_file))
            iterated = b"".join(stream.iter_decrypt_file(fd, 4, length))
        finally:
            os.close(fd)
    return {
        "stream": b"".join(stream.decrypt(_split(ciphertext, [7, 301, 4000]))),
        "into": bytes(into),
        "file": bytes(from_file),
        "iter": iterated,
    }


@pytest.mark.parametrize(
    ("length", "segment_size", "segments", "expected_ciphertext"),
    [
        (0, 64, 1, 16),
        (1, 64, 1, 17),
        (64, 64, 1, 80),
        (192, 64, 3, 240),
        (193, 64, 4, 257),
        (3 * SEGMENT_SIZE, SEGMENT_SIZE, 3, 3 * SEGMENT_SIZE + 48),
    ],
)
def test_segment_arithmetic(
    length: int, segment_size: int, segments: int, expected_ciphertext: int
) -> None:
    assert segment_count(length, segment_size) == segments
    assert ciphertext_length(length, segment_size) == expected_ciphertext


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=3000),
    segment_size=st.integers(1, 700),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
    threads=st.integers(1, 3),
)
def test_round_trip_through_every_path(
    data: bytes, segment_size: int, cuts: list[int], threads: int
) -> None:
    stream = _stream(segment_size)
    ciphertext = b"".join(stream.encrypt(data))
    chunked = b"".join(stream.encrypt(_split(data, cuts)))
    out = bytearray(len(data))
    stream.decrypt_into(ciphertext, memoryview(out), threads=threads)
    assert len(ciphertext) == ciphertext_length(len(data), segment_size)
    assert chunked == ciphertext  # re-cutting chunks does not change the stream
    assert bytes(out) == data
    assert set(_decrypt_all(stream, ciphertext, len(data)).values()) == {data}


@pytest.mark.parametrize("multiple", [1, 2, 5])
def test_exact_multiples_end_with_a_full_last_segment(multiple: int) -> None:
    stream = _stream(32)
    data = os.urandom(32 * multiple)
    segments = list(stream.encrypt(iter([data[:5], data[5:]])))
    assert [len(s) for s in segments] == [32 + SEGMENT_TAG_SIZE] * multiple
    assert set(_decrypt_all(stream, b"".join(segments), len(data)).values()) == {data}


def test_empty_plaintext_is_one_empty_last_segment() -> None:
    stream = _stream(32)
    [segment] = list(stream.encrypt(b""))
    [from_iterable] = list(stream.encrypt(iter([])))
    assert len(segment) == len(from_iterable) == SEGMENT_TAG_SIZE
    assert stream.decrypt_segment(0, segment, last=True) == b""
    with pytest.raises(DecryptionError):
        stream.decrypt_segment(0, segment, last=False)


def test_segments_follow_the_documented_construction() -> None:
    # Prepare: derive the segment key and nonces independently of the module.
    params = StreamParameters(bytes(range(32, 64)), b"prefix7", 16)
    subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=params.salt, info=AD).derive(KEY)
    data = bytes(range(40))
    # Execute
    segments = list(StreamingAead(KEY, params, AD).encrypt(data))
    # Assert: prefix(7) || index (4, big-endian) || last flag (1)
    cipher = AESGCM(subkey)
    assert (
        cipher.decrypt(b"prefix7" + b"\x00\x00\x00\x00" + b"\x00", segments[0], None) == data[:16]
    )
    assert (
        cipher.decrypt(b"prefix7" + b"\x00\x00\x00\x01" + b"\x00", segments[1], None) == data[16:32]
    )
    assert (
        cipher.decrypt(b"prefix7" + b"\x00\x00\x00\x02" + b"\x01", segments[2], None) == data[32:]
    )


def _segments(
    n_full: int = 4, tail: int = 10, size: int = 64
) -> tuple[StreamingAead, list[bytes], bytes]:
    stream = _stream(size)
    data = os.urandom(n_full * size + tail)
    return stream, list(stream.encrypt(data)), data


def _refused(stream: StreamingAead, ciphertext: bytes, length: int) -> None:
    with pytest.raises(DecryptionError):
        b"".join(stream.decrypt([ciphertext]))
    if ciphertext_length(length, stream.segment_size) == len(ciphertext):
        with pytest.raises(DecryptionError):
            stream.decrypt_into(ciphertext, memoryview(bytearray(length)))


@pytest.mark.parametrize("segment", [0, 2, 4])
@pytest.mark.parametrize("where", ["first-byte", "last-tag-byte"])
def test_a_flipped_bit_in_any_segment_is_refused(segment: int, where: str) -> None:
    stream, segments, data = _segments()
    damaged = bytearray(segments[segment])
    damaged[0 if where == "first-byte" else -1] ^= 0x01
    segments[segment] = bytes(damaged)
    _refused(stream, b"".join(segments), len(data))


def test_swapped_segments_are_refused() -> None:
    stream, segments, data = _segments()
    segments[1], segments[2] = segments[2], segments[1]
    _refused(stream, b"".join(segments), len(data))


@pytest.mark.parametrize("keep", [1, 2, 3, 4])
def test_truncation_at_a_segment_boundary_is_refused(keep: int) -> None:
    stream, segments, _ = _segments()
    truncated = b"".join(segments[:keep])
    with pytest.raises(DecryptionError):
        b"".join(stream.decrypt([truncated]))
    with pytest.raises(DecryptionError):  # even when told the shorter length
        stream.decrypt_into(truncated, memoryview(bytearray(keep * 64)))


@pytest.mark.parametrize("cut", [1, 15, 16, 40])
def test_truncation_inside_a_segment_is_refused(cut: int) -> None:
    stream, segments, data = _segments()
    _refused(stream, b"".join(segments)[:-cut], len(data))


def test_an_appended_segment_is_refused() -> None:
    stream, segments, data = _segments(tail=0)
    extra = stream.encrypt_segment(len(segments), b"x" * 10, last=True)
    _refused(stream, b"".join(segments) + extra, len(data))
    _refused(stream, b"".join(segments) + segments[-1], len(data))


@pytest.mark.parametrize("other", ["ad", "key", "salt", "prefix"])
def test_another_context_key_salt_or_prefix_is_refused(other: str) -> None:
    stream, segments, data = _segments()
    params = stream.params
    wrong = {
        "ad": StreamingAead(KEY, params, b"tenant/collection/metadata"),
        "key": StreamingAead(bytes(32), params, AD),
        "salt": StreamingAead(KEY, StreamParameters(bytes(32), b"prefix7", 64), AD),
        "prefix": StreamingAead(KEY, StreamParameters(params.salt, b"prefixX", 64), AD),
    }[other]
    _refused(wrong, b"".join(segments), len(data))


def test_file_decryption_refuses_a_short_file(tmp_path: Path) -> None:
    stream, segments, data = _segments()
    path = tmp_path / "c"
    path.write_bytes(b"".join(segments)[:-3])
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(DecryptionError):
            stream.decrypt_file_into(fd, 0, memoryview(bytearray(len(data))))
        with pytest.raises(DecryptionError):
            b"".join(stream.iter_decrypt_file(fd, 0, len(data)))
    finally:
        os.close(fd)


def test_parallel_decryption_of_many_segments() -> None:
    stream = _stream(4096)
    data = os.urandom(4096 * 37 + 123)
    ciphertext = b"".join(stream.encrypt(memoryview(data)))
    out = bytearray(len(data))
    stream.decrypt_into(ciphertext, memoryview(out), threads=2)
    assert out == data


@pytest.mark.parametrize(
    ("salt", "prefix", "size"),
    [(bytes(31), bytes(7), 64), (bytes(32), bytes(8), 64), (bytes(32), bytes(7), 0)],
)
def test_parameters_are_validated(salt: bytes, prefix: bytes, size: int) -> None:
    with pytest.raises(ValueError, match="must"):
        StreamParameters(salt, prefix, size)


def test_random_parameters_differ_per_stream() -> None:
    first, second = StreamParameters.random(), StreamParameters.random()
    assert first.salt != second.salt
    assert first.nonce_prefix != second.nonce_prefix
    assert first.segment_size == SEGMENT_SIZE
