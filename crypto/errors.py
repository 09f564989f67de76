"""Errors of the shared crypto: each says what was wrong, what was expected, how to fix it.

Both are raised to the party that called the primitive: a node, the gateway, the store
or the provisioner. Services map :class:`CryptoInputError` to a client error (the
caller's vector, block or ciphertext is malformed) and :class:`KeyManagementError` to
an operator error (a key file, key version or key context is missing or invalid).
"""

from __future__ import annotations

from embedding_core.errors import FedembedError

__all__ = ["CryptoError", "CryptoInputError", "KeyManagementError"]


class CryptoError(FedembedError):
    """Base class of the shared crypto's user-actionable errors."""


class KeyManagementError(CryptoError):
    """A key file, key version, key context or key rotation request is invalid."""


class CryptoInputError(CryptoError):
    """A vector, block or ciphertext handed to a crypto primitive is malformed."""
