"""Cryptography of the secure index: AEAD, key-encryption keys, streaming files, DCPE."""

from secure_index.sealing.aead import Aead, AesGcmAead, DecryptionError
from secure_index.sealing.key_encryption_keys import (
    EnvKeks,
    KekProvider,
    KekVersion,
    KeyFileKeks,
    WrappedKey,
    load_keks,
)
from secure_index.sealing.sealed_file import (
    FORMAT_VERSION,
    SealedContext,
    SealedHeader,
    SealedReader,
    open_sealed,
    read_sealed_header,
    rewrap_sealed,
    sealed_kek_id,
    write_sealed,
)
from secure_index.sealing.streaming_aead import SEGMENT_SIZE, StreamingAead, StreamParameters

__all__ = [
    "FORMAT_VERSION",
    "SEGMENT_SIZE",
    "Aead",
    "AesGcmAead",
    "DecryptionError",
    "EnvKeks",
    "KekProvider",
    "KekVersion",
    "KeyFileKeks",
    "SealedContext",
    "SealedHeader",
    "SealedReader",
    "StreamParameters",
    "StreamingAead",
    "WrappedKey",
    "load_keks",
    "open_sealed",
    "read_sealed_header",
    "rewrap_sealed",
    "sealed_kek_id",
    "write_sealed",
]
