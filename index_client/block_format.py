"""The wire format of a CKKS block upload, shared by nodes, the gateway and the store.

A node encrypts its documents into :class:`~crypto.ckks_search.EncryptedBlock` objects
and sends each one with the documents' opaque ids as one binary body
(``Content-Type: application/octet-stream``)::

    u32 little-endian header length || header: JSON {"ids": [...]} || EncryptedBlock.to_bytes()

The header may also name the encoder space of the encrypted vectors (``space``,
``encoder_backend``, ``model_fingerprint``: :mod:`index_client.vector_space`), which the
store checks against the collection's other blocks (:func:`block_upload_space`).

The gateway forwards the same body to the store. :func:`unpack_block_upload` refuses
anything else with a :class:`BlockFormatError` (an HTTP 422 at either service).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from embedding_core.errors import FedembedError
from index_client.vector_space import VectorSpace

if TYPE_CHECKING:  # TenSEAL loads with it: only where a block is unpacked
    from crypto.ckks_search import EncryptedBlock

__all__ = [
    "MAX_HEADER_BYTES",
    "OCTET_STREAM",
    "BlockFormatError",
    "block_upload_space",
    "pack_block_upload",
    "unpack_block_upload",
]

OCTET_STREAM = "application/octet-stream"
MAX_HEADER_BYTES = 16 << 20
_HEADER_LENGTH = struct.Struct("<I")


class BlockFormatError(FedembedError):
    """A block upload body is not :func:`pack_block_upload` output."""


def pack_block_upload(
    ids: Sequence[str], block: EncryptedBlock, *, space: VectorSpace | None = None
) -> bytes:
    """The binary body of a block upload: the ids' header, then the block's bytes.

    ``space``: the encoder space of the encrypted vectors (None: named none, as older
    clients; the torch space).
    """
    fields = space.as_fields() if space is not None else {}
    header = json.dumps({"ids": list(ids), **fields}).encode()
    return b"".join([_HEADER_LENGTH.pack(len(header)), header, block.to_bytes()])


def unpack_block_upload(body: bytes) -> tuple[list[str], EncryptedBlock]:
    """The ids and the block of a :func:`pack_block_upload` body.

    Raises:
        BlockFormatError: When the header is malformed.
        crypto.errors.CryptoInputError: When the block after it is malformed.
    """
    try:
        (length,) = _HEADER_LENGTH.unpack_from(body, 0)
        end = _HEADER_LENGTH.size + length
        if length > MAX_HEADER_BYTES or end > len(body):
            raise ValueError("header length")
        header = json.loads(body[_HEADER_LENGTH.size : end])
        ids = header["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("ids")
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise BlockFormatError(
            f"the block upload is malformed ({exc})",
            expected='u32 header length, JSON {"ids": [...]}, then the encrypted block',
            fix="build the body with pack_block_upload (fedembed node upload does)",
        ) from None
    from crypto.ckks_search import EncryptedBlock

    return ids, EncryptedBlock.from_bytes(memoryview(body)[end:])


def block_upload_space(body: bytes) -> VectorSpace | None:
    """The encoder space a :func:`pack_block_upload` body names (None: it names none).

    Raises:
        BlockFormatError: When the header, or the space it names, is malformed.
    """
    try:
        (length,) = _HEADER_LENGTH.unpack_from(body, 0)
        if length > MAX_HEADER_BYTES:
            raise ValueError("header length")
        header = json.loads(body[_HEADER_LENGTH.size : _HEADER_LENGTH.size + length])
        if not isinstance(header, dict):
            raise ValueError("header")
        return VectorSpace.from_fields(header)
    except (struct.error, ValueError, TypeError) as exc:
        raise BlockFormatError(
            f"the block upload's encoder space is malformed ({exc})",
            expected="space, encoder_backend and model_fingerprint of one encoder, or none",
            fix="build the body with pack_block_upload(..., space=VectorSpace.of(encoder))",
        ) from None
