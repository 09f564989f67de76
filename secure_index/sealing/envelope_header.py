"""The binary envelope header shared by sealed files and write-ahead log files.

Layout (all integers big-endian)::

    magic            format-specific bytes (b"FEDSEAL", b"FEDWAL")
    version          u16
    kek id length    u8, then the KEK id (ASCII)
    wrapped key len  u16, then the wrapped data key (the KEK's AEAD ciphertext)
    fields length    u32, then the format's own fields (salt, lengths, context JSON, ...)

The header is not encrypted but it is authenticated: the data key is wrapped with
associated data = ``magic || version || fields length || fields`` (see
:func:`authenticated_data`), and the format derives or binds its data encryption to the
same bytes, so editing any field makes the file fail to decrypt. The KEK id and the
wrapped key are left out of those bytes on purpose: re-wrapping a file under a new KEK
(envelope encryption's cheap rotation) changes only them, not the encrypted body. The
KEK provider binds the KEK id into its own wrap.

Parsing never trusts a length: every read is bounds-checked and a short or inconsistent
header raises :class:`HeaderFormatError`, which callers turn into ``IntegrityError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from secure_index.sealing.key_encryption_keys import WrappedKey

__all__ = [
    "MAX_FIELDS_SIZE",
    "MAX_HEADER_SIZE",
    "ByteReader",
    "EnvelopeHeader",
    "HeaderFormatError",
    "authenticated_data",
    "pack_envelope",
    "unpack_envelope",
]

MAX_KEK_ID_SIZE = 255
MAX_WRAPPED_KEY_SIZE = 4096
MAX_FIELDS_SIZE = 64 * 1024 + 256
_U8, _U16, _U32, _U64 = 1, 2, 4, 8
_MAX_MAGIC = 16
MAX_HEADER_SIZE = (
    _MAX_MAGIC + _U16 + _U8 + MAX_KEK_ID_SIZE + _U16 + MAX_WRAPPED_KEY_SIZE + _U32 + MAX_FIELDS_SIZE
)


class HeaderFormatError(Exception):
    """A header is short, inconsistent or out of bounds (internal; becomes IntegrityError)."""


class ByteReader:
    """A bounds-checked cursor over bytes."""

    def __init__(self, data: bytes | memoryview) -> None:
        self._data = memoryview(data).cast("B")
        self.offset = 0

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes; raises :class:`HeaderFormatError` past the end."""
        end = self.offset + size
        if size < 0 or end > self._data.nbytes:
            raise HeaderFormatError
        chunk = bytes(self._data[self.offset : end])
        self.offset = end
        return chunk

    def uint(self, size: int) -> int:
        """The next ``size``-byte big-endian unsigned integer."""
        return int.from_bytes(self.take(size), "big")

    def remaining(self) -> int:
        """Bytes left after the cursor."""
        return self._data.nbytes - self.offset


@dataclass(frozen=True)
class EnvelopeHeader:
    """A parsed envelope header.

    Attributes:
        magic: The format's magic bytes.
        version: The format version.
        wrapped: The wrapped data key and the id of the KEK that wrapped it.
        fields: The format's own fields (authenticated).
        length: Bytes the header occupies; the body starts there.
    """

    magic: bytes
    version: int
    wrapped: WrappedKey
    fields: bytes
    length: int

    @property
    def authenticated(self) -> bytes:
        """The associated data that binds this header (see :func:`authenticated_data`)."""
        return authenticated_data(self.magic, self.version, self.fields)


def authenticated_data(magic: bytes, version: int, fields: bytes) -> bytes:
    """``magic || version || len(fields) || fields``: what the wrap and the body bind."""
    return magic + version.to_bytes(_U16, "big") + len(fields).to_bytes(_U32, "big") + fields


def pack_envelope(magic: bytes, version: int, wrapped: WrappedKey, fields: bytes) -> bytes:
    """Serialise a header.

    Raises:
        ValueError: When a part exceeds the format's bounds.
    """
    kek_id = wrapped.kek_id.encode("ascii")
    if not 0 < len(kek_id) <= MAX_KEK_ID_SIZE:
        raise ValueError(f"a KEK id must be 1..{MAX_KEK_ID_SIZE} ASCII characters")
    if not 0 < len(wrapped.blob) <= MAX_WRAPPED_KEY_SIZE:
        raise ValueError(f"a wrapped key must be 1..{MAX_WRAPPED_KEY_SIZE} bytes")
    if len(fields) > MAX_FIELDS_SIZE:
        raise ValueError(f"header fields exceed {MAX_FIELDS_SIZE} bytes")
    return b"".join(
        [
            magic,
            version.to_bytes(_U16, "big"),
            len(kek_id).to_bytes(_U8, "big"),
            kek_id,
            len(wrapped.blob).to_bytes(_U16, "big"),
            wrapped.blob,
            len(fields).to_bytes(_U32, "big"),
            fields,
        ]
    )


def unpack_envelope(data: bytes | memoryview, magic: bytes) -> EnvelopeHeader:
    """Parse the header at the start of ``data`` (which may hold more bytes after it).

    Raises:
        HeaderFormatError: On a wrong magic or any short or out-of-bounds part.
    """
    reader = ByteReader(data)
    if reader.take(len(magic)) != magic:
        raise HeaderFormatError
    version = reader.uint(_U16)
    kek_size = reader.uint(_U8)
    try:
        kek_id = reader.take(kek_size).decode("ascii")
    except UnicodeDecodeError:
        raise HeaderFormatError from None
    blob_size = reader.uint(_U16)
    if not kek_id or not 0 < blob_size <= MAX_WRAPPED_KEY_SIZE:
        raise HeaderFormatError
    blob = reader.take(blob_size)
    fields_size = reader.uint(_U32)
    if fields_size > MAX_FIELDS_SIZE:
        raise HeaderFormatError
    fields = reader.take(fields_size)
    return EnvelopeHeader(magic, version, WrappedKey(kek_id, blob), fields, reader.offset)
