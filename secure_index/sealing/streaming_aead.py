"""Segmented streaming AEAD: AES-256-GCM segments under an HKDF-derived per-stream key.

The STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015 (LNCS 9215,
pp. 493-517), as instantiated by Google Tink's AES-GCM-HKDF streaming AEAD (the layout is
the same idea, not byte-compatible with Tink):

- per stream, a random 32-byte salt and a random 7-byte nonce prefix;
- segment key = HKDF-SHA256(ikm=data key, salt=salt, info=associated data), 32 bytes,
  so the associated data binds every segment and a stream cannot be moved to another
  context;
- the plaintext is cut into segments of ``segment_size`` bytes (the last may be shorter,
  and is empty only for an empty plaintext); segment ``i`` is AES-256-GCM encrypted with
  nonce ``prefix (7) || i (4, big-endian) || last (1: 0 or 1)`` and carries its 16-byte tag.

Each segment is authenticated with its position and with whether it is the last one, so
a flipped bit, reordered or duplicated segments, a truncation at any point (including a
segment boundary) and appended data all fail with
:class:`~secure_index.sealing.aead.DecryptionError`. Encryption and decryption stream in
constant memory; :meth:`StreamingAead.decrypt_file_into` decrypts straight into a
caller's buffer with ``AESGCM.decrypt_into`` on two threads (it releases the GIL).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secure_index.sealing.aead import AEAD_KEY_SIZE, DecryptionError, require_associated_data

__all__ = [
    "DECRYPT_THREADS",
    "MAX_SEGMENTS",
    "NONCE_PREFIX_SIZE",
    "SALT_SIZE",
    "SEGMENT_SIZE",
    "SEGMENT_TAG_SIZE",
    "StreamParameters",
    "StreamingAead",
    "ciphertext_length",
    "segment_count",
]

SEGMENT_SIZE = 1 << 20
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
SEGMENT_TAG_SIZE = 16
SEGMENT_INDEX_BYTES = 4
MAX_SEGMENTS = 1 << (8 * SEGMENT_INDEX_BYTES)
MAX_SEGMENT_SIZE = 1 << 30
DECRYPT_THREADS = 2
_LAST, _NOT_LAST = b"\x01", b"\x00"

Buffer = bytes | bytearray | memoryview


def segment_count(plaintext_length: int, segment_size: int) -> int:
    """Number of segments of a stream (an empty plaintext is one empty segment)."""
    return max(1, -(-plaintext_length // segment_size))


def ciphertext_length(plaintext_length: int, segment_size: int) -> int:
    """Length of the segments of a ``plaintext_length``-byte stream (tags included)."""
    return plaintext_length + segment_count(plaintext_length, segment_size) * SEGMENT_TAG_SIZE


@dataclass(frozen=True)
class StreamParameters:
    """The public per-stream values: salt, nonce prefix and segment size."""

    salt: bytes
    nonce_prefix: bytes
    segment_size: int = SEGMENT_SIZE

    def __post_init__(self) -> None:
        if len(self.salt) != SALT_SIZE or len(self.nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ValueError(f"salt must be {SALT_SIZE} and prefix {NONCE_PREFIX_SIZE} bytes")
        if not 0 < self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment_size must be in 1..{MAX_SEGMENT_SIZE}")

    @classmethod
    def random(cls, segment_size: int = SEGMENT_SIZE) -> StreamParameters:
        """Fresh random salt and nonce prefix."""
        return cls(
            secrets.token_bytes(SALT_SIZE), secrets.token_bytes(NONCE_PREFIX_SIZE), segment_size
        )


def _as_bytes_view(data: Buffer) -> memoryview:
    return memoryview(data).cast("B")


class StreamingAead:
    """The segment cipher of one stream: data key + parameters + associated data.

    Args:
        key: The stream's 32-byte data key (the HKDF input keying material).
        params: Salt, nonce prefix and segment size of the stream.
        associated_data: Non-empty context, bound into the segment key (HKDF info).
    """

    __slots__ = ("_cipher", "_params")

    def __init__(self, key: bytes, params: StreamParameters, associated_data: bytes) -> None:
        if len(key) != AEAD_KEY_SIZE:
            raise ValueError(f"the data key must be {AEAD_KEY_SIZE} bytes")
        info = require_associated_data(associated_data)
        subkey = HKDF(
            algorithm=hashes.SHA256(), length=AEAD_KEY_SIZE, salt=params.salt, info=info
        ).derive(key)
        self._cipher = AESGCM(subkey)
        self._params = params

    def __repr__(self) -> str:
        return f"StreamingAead(segment_size={self._params.segment_size}, key=<hidden>)"

    @property
    def params(self) -> StreamParameters:
        """The stream's public parameters."""
        return self._params

    @property
    def segment_size(self) -> int:
        """Plaintext bytes per segment."""
        return self._params.segment_size

    def _nonce(self, index: int, last: bool) -> bytes:
        if not 0 <= index < MAX_SEGMENTS:
            raise ValueError(f"a stream holds at most {MAX_SEGMENTS} segments")
        return (
            self._params.nonce_prefix
            + index.to_bytes(SEGMENT_INDEX_BYTES, "big")
            + (_LAST if last else _NOT_LAST)
        )

    # -- one segment -----------------------------------------------------------------------

    def encrypt_segment(self, index: int, plaintext: Buffer, *, last: bool) -> bytes:
        """Encrypt segment ``index`` (``segment_size`` bytes unless ``last``)."""
        return self._cipher.encrypt(self._nonce(index, last), plaintext, None)

    def decrypt_segment_into(
        self, index: int, ciphertext: Buffer, out: memoryview, *, last: bool
    ) -> None:
        """Decrypt segment ``index`` into ``out`` (exactly its plaintext length).

        Raises:
            DecryptionError: When the segment does not authenticate at that position.
        """
        if len(ciphertext) != out.nbytes + SEGMENT_TAG_SIZE:
            raise DecryptionError
        try:
            self._cipher.decrypt_into(self._nonce(index, last), ciphertext, None, out)
        except InvalidTag:
            raise DecryptionError from None

    def decrypt_segment(self, index: int, ciphertext: Buffer, *, last: bool) -> bytes:
        """Decrypt segment ``index``; raises :class:`DecryptionError` on failure."""
        try:
            return self._cipher.decrypt(self._nonce(index, last), ciphertext, None)
        except InvalidTag:
            raise DecryptionError from None

    # -- whole streams ---------------------------------------------------------------------

    def encrypt(self, data: Buffer | Iterable[Buffer]) -> Iterator[bytes]:
        """Encrypt bytes, a buffer or an iterable of chunks; yields ciphertext segments.

        Chunks of any size are re-cut into segments; memory stays at one segment.
        """
        size = self._params.segment_size
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = _as_bytes_view(data)
            count = segment_count(view.nbytes, size)
            for i in range(count):
                yield self.encrypt_segment(i, view[i * size : (i + 1) * size], last=i == count - 1)
            return
        pending = bytearray()
        index = 0
        for chunk in data:
            view = _as_bytes_view(chunk)
            pos = 0
            while pos < view.nbytes:
                if len(pending) == size:  # full, and more data follows: not the last one
                    yield self.encrypt_segment(index, pending, last=False)
                    index += 1
                    pending.clear()
                take = min(size - len(pending), view.nbytes - pos)
                pending += view[pos : pos + take]
                pos += take
        yield self.encrypt_segment(index, pending, last=True)

    def decrypt(self, ciphertext: Iterable[Buffer]) -> Iterator[bytes]:
        """Decrypt a stream given as ciphertext chunks of any size; yields plaintext segments.

        Each yielded segment is authentic at its position; a truncated stream raises
        at the end, so act on the data only once the iterator is exhausted.

        Raises:
            DecryptionError: On any modification, reordering or truncation.
        """
        full = self._params.segment_size + SEGMENT_TAG_SIZE
        pending = bytearray()
        index = 0
        for chunk in ciphertext:
            pending += _as_bytes_view(chunk)
            pos = 0
            while len(pending) - pos > full:  # more follows, so this one is not the last
                yield self.decrypt_segment(index, bytes(pending[pos : pos + full]), last=False)
                pos += full
                index += 1
            del pending[:pos]
        if len(pending) < SEGMENT_TAG_SIZE:
            raise DecryptionError
        yield self.decrypt_segment(index, pending, last=True)

    def decrypt_into(
        self, ciphertext: Buffer, out: memoryview, *, threads: int = DECRYPT_THREADS
    ) -> None:
        """Decrypt a whole in-memory stream into ``out`` (exactly the plaintext length).

        Raises:
            DecryptionError: On any modification or a length that does not match.
        """
        view = _as_bytes_view(ciphertext)
        size = self._params.segment_size
        if view.nbytes != ciphertext_length(out.nbytes, size):
            raise DecryptionError
        full = size + SEGMENT_TAG_SIZE

        def segment(i: int, _scratch: memoryview) -> memoryview:
            return view[i * full : i * full + min(full, view.nbytes - i * full)]

        self._decrypt_segments_into(segment, out, threads=threads, scratch_size=0)

    def decrypt_file_into(
        self, fd: int, offset: int, out: memoryview, *, threads: int = DECRYPT_THREADS
    ) -> None:
        """Decrypt the stream stored in ``fd`` from ``offset`` into ``out`` (fast path).

        Reads each segment with ``os.preadv`` into a per-thread buffer and decrypts it
        with ``AESGCM.decrypt_into`` straight into ``out``; ``threads`` threads share the
        segments (both calls release the GIL).

        Raises:
            DecryptionError: On any modification or a short file.
        """
        size = self._params.segment_size
        full = size + SEGMENT_TAG_SIZE
        total = ciphertext_length(out.nbytes, size)

        def segment(i: int, scratch: memoryview) -> memoryview:
            want = min(full, total - i * full)
            got = os.preadv(fd, [scratch[:want]], offset + i * full)
            if got != want:
                raise DecryptionError
            return scratch[:want]

        self._decrypt_segments_into(segment, out, threads=threads, scratch_size=full)

    def iter_decrypt_file(self, fd: int, offset: int, plaintext_length: int) -> Iterator[bytes]:
        """Yield the plaintext segments of the stream stored in ``fd`` from ``offset``.

        Raises:
            DecryptionError: On any modification or a short file (possibly after yielding
                earlier, individually authentic, segments).
        """
        size = self._params.segment_size
        count = segment_count(plaintext_length, size)
        for i in range(count):
            plain = min(size, plaintext_length - i * size)
            data = os.pread(fd, plain + SEGMENT_TAG_SIZE, offset + i * (size + SEGMENT_TAG_SIZE))
            if len(data) != plain + SEGMENT_TAG_SIZE:
                raise DecryptionError
            yield self.decrypt_segment(i, data, last=i == count - 1)

    def _decrypt_segments_into(
        self,
        segment: Callable[[int, memoryview], memoryview],
        out: memoryview,
        *,
        threads: int,
        scratch_size: int,
    ) -> None:
        out = out.cast("B")
        size = self._params.segment_size
        count = segment_count(out.nbytes, size)

        def run(first: int, stop: int) -> None:
            scratch = memoryview(bytearray(scratch_size))
            for i in range(first, stop):
                self.decrypt_segment_into(
                    i,
                    segment(i, scratch),
                    out[i * size : min((i + 1) * size, out.nbytes)],
                    last=i == count - 1,
                )

        workers = max(1, min(threads, count))
        if workers == 1:
            run(0, count)
            return
        per = -(-count // workers)
        # the calling thread takes the first share: one thread fewer to start
        with ThreadPoolExecutor(workers - 1, thread_name_prefix="stream-decrypt") as pool:
            futures = [
                pool.submit(run, w * per, min(count, (w + 1) * per)) for w in range(1, workers)
            ]
            run(0, min(count, per))
            for future in futures:
                future.result()
