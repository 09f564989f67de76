"""Sealed files: envelope-encrypted, context-bound files of the secure index.

A sealed file is an :mod:`~secure_index.sealing.envelope_header` header followed by a
segmented streaming AEAD body (:mod:`~secure_index.sealing.streaming_aead`, the STREAM
construction of Hoang, Reyhanitabar, Rogaway and Vizár, CRYPTO 2015). The header fields
are::

    salt (32) || nonce prefix (7) || segment size (u32) || plaintext length (u64)
    || context length (u32) || context JSON

Each file gets a fresh random AES-256 data key, wrapped by the KEK provider with
associated data = the authenticated header (magic, version and those fields); the body's
segment key is HKDF-derived with the same bytes as info. The context JSON
(:class:`SealedContext`) names tenant, collection, kind, dimension, metric, element
count and generation, and :func:`open_sealed` compares it with what the caller expects,
so a file swapped in from another collection or an older generation is refused. Every
failure, whatever the cause, is the same opaque ``IntegrityError(path)``; an unknown or
retired KEK id is a ``KeyManagementError`` naming it.

Plaintext never touches the disk: :func:`write_sealed` encrypts in memory and writes
only ciphertext, atomically (temp file, fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from crypto.errors import KeyManagementError
from secure_index.atomic_file import atomic_write, storage_error
from secure_index.errors import IntegrityError
from secure_index.sealing.aead import AEAD_KEY_SIZE, DecryptionError
from secure_index.sealing.envelope_header import (
    MAX_HEADER_SIZE,
    ByteReader,
    EnvelopeHeader,
    HeaderFormatError,
    authenticated_data,
    pack_envelope,
    unpack_envelope,
)
from secure_index.sealing.key_encryption_keys import KekProvider
from secure_index.sealing.streaming_aead import (
    DECRYPT_THREADS,
    MAX_SEGMENTS,
    NONCE_PREFIX_SIZE,
    SALT_SIZE,
    SEGMENT_SIZE,
    StreamingAead,
    StreamParameters,
    ciphertext_length,
    segment_count,
)

__all__ = [
    "FORMAT_VERSION",
    "SEAL_MAGIC",
    "SealedContext",
    "SealedHeader",
    "SealedReader",
    "open_sealed",
    "read_sealed_header",
    "rewrap_sealed",
    "sealed_kek_id",
    "write_sealed",
]

FORMAT_VERSION = 1
SEAL_MAGIC = b"FEDSEAL"
FORMAT_VERSION_KEY = "format_version"
_U32, _U64 = 4, 8
_COPY_CHUNK = 8 << 20
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class SealedContext:
    """What a sealed file is; bound to its encryption and checked on open."""

    tenant: str
    collection: str
    kind: str
    dimension: int = 0
    metric: str = ""
    element_count: int = 0
    generation: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "str" and not isinstance(value, str):
                raise ValueError(f"SealedContext.{f.name} must be a string")
            if f.type == "int" and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"SealedContext.{f.name} must be a non-negative integer")

    def associated_data(self) -> bytes:
        """Canonical JSON (sorted keys, compact, ASCII) including :data:`FORMAT_VERSION`."""
        document: dict[str, Any] = {**asdict(self), FORMAT_VERSION_KEY: FORMAT_VERSION}
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_associated_data(cls, data: bytes) -> SealedContext:
        """Parse :meth:`associated_data` output; ``ValueError`` unless canonical and current."""
        document = json.loads(data)
        if not isinstance(document, dict) or document.pop(FORMAT_VERSION_KEY, None) != (
            FORMAT_VERSION
        ):
            raise ValueError("not a current sealed-file context")
        context = cls(**document)
        if context.associated_data() != data:
            raise ValueError("context is not canonical")
        return context


@dataclass(frozen=True)
class SealedHeader:
    """The public part of a sealed file's header (no key material)."""

    kek_id: str
    context: SealedContext
    plaintext_length: int
    segment_size: int
    body_offset: int


@dataclass(frozen=True)
class _Parsed:
    envelope: EnvelopeHeader
    params: StreamParameters
    plaintext_length: int
    context: SealedContext
    file_size: int

    @property
    def public(self) -> SealedHeader:
        return SealedHeader(
            kek_id=self.envelope.wrapped.kek_id,
            context=self.context,
            plaintext_length=self.plaintext_length,
            segment_size=self.params.segment_size,
            body_offset=self.envelope.length,
        )


def _fields(params: StreamParameters, plaintext_length: int, context: bytes) -> bytes:
    return b"".join(
        [
            params.salt,
            params.nonce_prefix,
            params.segment_size.to_bytes(_U32, "big"),
            plaintext_length.to_bytes(_U64, "big"),
            len(context).to_bytes(_U32, "big"),
            context,
        ]
    )


def _parse(fd: int) -> _Parsed:
    """Parse and bounds-check the header; raises HeaderFormatError or ValueError."""
    size = os.fstat(fd).st_size
    envelope = unpack_envelope(os.pread(fd, min(size, MAX_HEADER_SIZE), 0), SEAL_MAGIC)
    if envelope.version != FORMAT_VERSION:
        raise HeaderFormatError
    reader = ByteReader(envelope.fields)
    params = StreamParameters(
        reader.take(SALT_SIZE), reader.take(NONCE_PREFIX_SIZE), reader.uint(_U32)
    )
    length = reader.uint(_U64)
    context = SealedContext.from_associated_data(reader.take(reader.uint(_U32)))
    if reader.remaining() or segment_count(length, params.segment_size) > MAX_SEGMENTS:
        raise HeaderFormatError
    if size != envelope.length + ciphertext_length(length, params.segment_size):
        raise HeaderFormatError
    return _Parsed(envelope, params, length, context, size)


def _open_fd(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except FileNotFoundError:
        raise IntegrityError(path) from None
    except OSError as exc:
        raise storage_error(exc, path=path, operation="read") from exc


def _parse_or_refuse(fd: int, path: Path) -> _Parsed:
    try:
        return _parse(fd)
    except (HeaderFormatError, ValueError, TypeError):
        raise IntegrityError(path) from None
    except OSError as exc:
        raise storage_error(exc, path=path, operation="read") from exc


def _unwrap(parsed: _Parsed, keks: KekProvider, path: Path) -> bytes:
    try:
        key = keks.unwrap(parsed.envelope.wrapped, associated_data=parsed.envelope.authenticated)
    except DecryptionError:
        raise IntegrityError(path) from None
    except KeyManagementError as exc:
        raise KeyManagementError(
            f"{path}: {exc.problem}", expected=exc.expected, fix=exc.fix
        ) from None
    if len(key) != AEAD_KEY_SIZE:
        raise IntegrityError(path)
    return key


def write_sealed(
    path: Path,
    data: Buffer | Iterable[bytes | memoryview],
    *,
    context: SealedContext,
    keks: KekProvider,
    segment_size: int = SEGMENT_SIZE,
) -> int:
    """Encrypt ``data`` under a fresh data key and replace ``path`` atomically.

    An iterable's chunks are gathered (references, in memory only) first, because the
    header records the plaintext length.

    Returns:
        The size of the written file.

    Raises:
        StorageError: When the file cannot be written (the previous file stays intact).
    """
    source: memoryview | list[memoryview]
    if isinstance(data, (bytes, bytearray, memoryview)):
        source = memoryview(data).cast("B")
        length = source.nbytes
    else:
        source = [memoryview(chunk).cast("B") for chunk in data]
        length = sum(chunk.nbytes for chunk in source)
    params = StreamParameters.random(segment_size)
    if segment_count(length, segment_size) > MAX_SEGMENTS:
        raise ValueError(f"{length} bytes need more than {MAX_SEGMENTS} segments")
    fields_ = _fields(params, length, context.associated_data())
    ad = authenticated_data(SEAL_MAGIC, FORMAT_VERSION, fields_)
    data_key = secrets.token_bytes(AEAD_KEY_SIZE)
    header = pack_envelope(
        SEAL_MAGIC, FORMAT_VERSION, keks.wrap(data_key, associated_data=ad), fields_
    )
    stream = StreamingAead(data_key, params, ad)
    return atomic_write(Path(path), itertools.chain([header], stream.encrypt(source)))


class SealedReader:
    """An opened, authenticated-header sealed file; the body is checked while reading.

    Attributes:
        context: The stored context (equal to the expected one, element count aside when
            it was not checked).
        kek_id: The KEK that wraps the file's data key.
        plaintext_length: Bytes of plaintext.
    """

    def __init__(self, path: Path, fd: int, parsed: _Parsed, stream: StreamingAead) -> None:
        self.path = path
        self.context = parsed.context
        self.kek_id = parsed.envelope.wrapped.kek_id
        self.plaintext_length = parsed.plaintext_length
        self._fd = fd
        self._offset = parsed.envelope.length
        self._stream = stream
        self._closer = weakref.finalize(self, os.close, fd)

    def __enter__(self) -> SealedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (also done when the reader is garbage-collected)."""
        self._closer()

    def read_into(self, out: memoryview, *, threads: int = DECRYPT_THREADS) -> None:
        """Decrypt the whole body into ``out`` (exactly ``plaintext_length`` bytes).

        Segments are decrypted on ``threads`` threads straight into ``out`` (fast path).
        On failure ``out`` is zeroed before the error is raised.

        Raises:
            IntegrityError: When any segment fails authentication or the file is short.
            ValueError: When ``out`` has the wrong size.
        """
        out = memoryview(out).cast("B")
        if out.nbytes != self.plaintext_length:
            raise ValueError(f"out has {out.nbytes} bytes, the file holds {self.plaintext_length}")
        try:
            self._stream.decrypt_file_into(self._fd, self._offset, out, threads=threads)
        except (DecryptionError, OSError):
            _wipe(out)
            raise IntegrityError(self.path) from None

    def read(self) -> bytearray:
        """Decrypt the whole body into a new buffer."""
        buffer = bytearray(self.plaintext_length)
        self.read_into(memoryview(buffer))
        return buffer

    def iter_chunks(self) -> Iterator[bytes]:
        """Yield the plaintext segment by segment (constant memory).

        Each chunk is authentic; a damaged or truncated body raises ``IntegrityError``
        when reached, so act on the data only once the iterator is exhausted.
        """
        try:
            yield from self._stream.iter_decrypt_file(self._fd, self._offset, self.plaintext_length)
        except (DecryptionError, OSError):
            raise IntegrityError(self.path) from None


def _wipe(out: memoryview) -> None:
    zeros = bytes(min(out.nbytes, _COPY_CHUNK))
    for start in range(0, out.nbytes, len(zeros) or 1):
        end = min(out.nbytes, start + len(zeros))
        out[start:end] = zeros[: end - start]


def open_sealed(
    path: Path,
    *,
    expected: SealedContext,
    keks: KekProvider,
    check_element_count: bool = True,
) -> SealedReader:
    """Open a sealed file, check its header, context and KEK, and return its reader.

    Raises:
        IntegrityError: On a bad magic or version, a damaged or truncated header or
            size, a context other than ``expected`` (another collection, kind, dimension,
            metric, generation, or element count when checked), or a wrong KEK.
        KeyManagementError: When the file's KEK id is unknown or retired.
    """
    path = Path(path)
    fd = _open_fd(path)
    try:
        parsed = _parse_or_refuse(fd, path)
        stored = parsed.context
        if not check_element_count:
            stored = replace(stored, element_count=expected.element_count)
        if stored != expected:
            raise IntegrityError(path)
        key = _unwrap(parsed, keks, path)
        stream = StreamingAead(key, parsed.params, parsed.envelope.authenticated)
    except BaseException:
        os.close(fd)
        raise
    return SealedReader(path, fd, parsed, stream)


def read_sealed_header(path: Path) -> SealedHeader:
    """The public header of a sealed file (no key needed; nothing is authenticated yet).

    Raises:
        IntegrityError: When the header is malformed or the size does not match.
    """
    path = Path(path)
    fd = _open_fd(path)
    try:
        return _parse_or_refuse(fd, path).public
    finally:
        os.close(fd)


def sealed_kek_id(path: Path) -> str:
    """The id of the KEK that wraps ``path``'s data key (unauthenticated, for listing)."""
    return read_sealed_header(path).kek_id


def rewrap_sealed(path: Path, *, keks: KekProvider) -> bool:
    """Re-wrap the file's data key under ``keks.primary_id``; the body is copied as is.

    Returns:
        ``False`` when the file is already wrapped under the primary KEK.

    Raises:
        IntegrityError: When the header is damaged or the old KEK does not unwrap it.
        KeyManagementError: When the file's KEK id is unknown or retired.
        StorageError: When the new file cannot be written (the old one stays).
    """
    path = Path(path)
    fd = _open_fd(path)
    try:
        parsed = _parse_or_refuse(fd, path)
        if parsed.envelope.wrapped.kek_id == keks.primary_id:
            return False
        ad = parsed.envelope.authenticated
        wrapped = keks.wrap(_unwrap(parsed, keks, path), associated_data=ad)
        header = pack_envelope(SEAL_MAGIC, FORMAT_VERSION, wrapped, parsed.envelope.fields)
        body = _copy_chunks(fd, parsed.envelope.length, parsed.file_size, path)
        atomic_write(path, itertools.chain([header], body))
    finally:
        os.close(fd)
    return True


def _copy_chunks(fd: int, start: int, end: int, path: Path) -> Iterator[bytes]:
    for offset in range(start, end, _COPY_CHUNK):
        want = min(_COPY_CHUNK, end - offset)
        chunk = os.pread(fd, want, offset)
        if len(chunk) != want:
            raise IntegrityError(path)
        yield chunk
