"""A two-method AEAD with mandatory associated data, in the style of Google's Tink.

AES-256-GCM (NIST SP 800-38D, "Recommendation for Block Cipher Modes of Operation:
Galois/Counter Mode (GCM) and GMAC", Dworkin, 2007) with a fresh random 96-bit nonce per
message, prepended to the ciphertext: ``nonce (12) || ciphertext || tag (16)``. The
interface follows Tink's ``Aead`` primitive (``encrypt(plaintext, associated_data)``),
except that the associated data is mandatory here: every ciphertext of the secure index
is bound to what it is (tenant, collection, file kind, position), so an empty context is
a programming error.

Random nonces keep a key safe for about 2**32 messages (SP 800-38D, section 8.3); every
file of the index has its own data key and a key-encryption key wraps one short data key
per file, far below that bound.
"""

from __future__ import annotations

import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "AEAD_KEY_SIZE",
    "AEAD_NONCE_SIZE",
    "AEAD_OVERHEAD",
    "AEAD_TAG_SIZE",
    "Aead",
    "AesGcmAead",
    "DecryptionError",
    "require_associated_data",
]

AEAD_KEY_SIZE = 32
AEAD_NONCE_SIZE = 12
AEAD_TAG_SIZE = 16
AEAD_OVERHEAD = AEAD_NONCE_SIZE + AEAD_TAG_SIZE
_DECRYPTION_FAILED = "decryption failed"

Buffer = bytes | bytearray | memoryview


class Aead(Protocol):
    """Authenticated encryption with associated data (Tink's ``Aead``)."""

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext``, binding ``associated_data``."""
        ...

    def decrypt(self, ciphertext: bytes, associated_data: bytes) -> bytes:
        """Authenticate and decrypt, or raise :class:`DecryptionError`."""
        ...


class DecryptionError(Exception):
    """A ciphertext failed authentication (always the same opaque message).

    Internal to the crypto layer: callers turn it into ``IntegrityError(path)``.
    """

    def __init__(self) -> None:
        super().__init__(_DECRYPTION_FAILED)


def require_associated_data(associated_data: object) -> bytes:
    """Return ``associated_data`` if it is non-empty bytes, else raise ``ValueError``."""
    if not isinstance(associated_data, bytes) or not associated_data:
        raise ValueError("associated_data must be non-empty bytes")
    return associated_data


class AesGcmAead:
    """AES-256-GCM with a random 96-bit nonce prepended to each ciphertext.

    The key and nonces stay inside the object: no attribute exposes them and ``repr``
    hides the key.

    Args:
        key: A 32-byte AES-256 key.

    Raises:
        ValueError: When the key is not 32 bytes.
    """

    __slots__ = ("_cipher",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != AEAD_KEY_SIZE:
            raise ValueError(f"AES-256-GCM needs a {AEAD_KEY_SIZE}-byte key")
        self._cipher = AESGCM(bytes(key))

    def __repr__(self) -> str:
        return "AesGcmAead(key=<hidden>)"

    def encrypt(self, plaintext: Buffer, associated_data: bytes) -> bytes:
        """Encrypt ``plaintext`` under a fresh random nonce.

        Args:
            plaintext: The message (may be empty).
            associated_data: Non-empty context bound to the ciphertext.

        Returns:
            ``nonce || ciphertext || tag``.

        Raises:
            ValueError: When ``associated_data`` is empty or not bytes.
        """
        ad = require_associated_data(associated_data)
        nonce = os.urandom(AEAD_NONCE_SIZE)
        return nonce + self._cipher.encrypt(nonce, plaintext, ad)

    def decrypt(self, ciphertext: Buffer, associated_data: bytes) -> bytes:
        """Authenticate and decrypt a ciphertext made by :meth:`encrypt`.

        Args:
            ciphertext: ``nonce || ciphertext || tag``.
            associated_data: The context given to :meth:`encrypt`.

        Returns:
            The plaintext.

        Raises:
            DecryptionError: When the ciphertext, tag, nonce, key or associated data do
                not match (one opaque error for every cause).
            ValueError: When ``associated_data`` is empty or not bytes.
        """
        ad = require_associated_data(associated_data)
        view = memoryview(ciphertext).cast("B")
        if view.nbytes < AEAD_OVERHEAD:
            raise DecryptionError
        try:
            return self._cipher.decrypt(view[:AEAD_NONCE_SIZE], view[AEAD_NONCE_SIZE:], ad)
        except InvalidTag:
            raise DecryptionError from None
