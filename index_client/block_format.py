"""The wire format of a CKKS block upload, shared by nodes, the gateway and the store.

A node encrypts its documents into :class:`~crypto.ckks_search.EncryptedBlock` objects
and sends each one with the documents' opaque ids as one binary body
(``Content-Type: application/octet-stream``)::

    u32 little-endian header length || header: JSON {"ids": [...]} || EncryptedBlock.to_bytes()

The gateway forwards the same body to the store. :func:`unpack_block_upload` refuses
anything else with a :class:`BlockFormatError` (an HTTP 422 at either service).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

from crypto.ckks_search import EncryptedBlock
from embedding_core.errors import FedembedError

__all__ = [
    "MAX_HEADER_BYTES",
    "OCTET_STREAM",
    "BlockFormatError",
    "pack_block_upload",
    "unpack_block_upload",
]

OCTET_STREAM = "application/octet-stream"
MAX_HEADER_BYTES = 16 << 20
_HEADER_LENGTH = struct.Struct("<I")


class BlockFormatError(FedembedError):
    """A block upload body is not :func:`pack_block_upload` output."""


def pack_block_upload(ids: Sequence[str], block: EncryptedBlock) -> bytes:
    """The binary body of a block upload: the ids' header, then the block's bytes."""
    header = json.dumps({"ids": list(ids)}).encode()
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
    return ids, EncryptedBlock.from_bytes(memoryview(body)[end:])
