"""Key wrapping: seal a secret to a member's P-384 public key, open it with the private key.

ECIES in the DHIES form of Abdalla, Bellare and Rogaway ("The Oracle Diffie-Hellman
Assumptions and an Analysis of DHIES", CT-RSA 2001), with the primitives of SEC 1 v2
(section 5.1) and the KEM/DEM split of HPKE (RFC 9180): an ephemeral ECDH on P-384 with
the recipient's key, HKDF-SHA384 (RFC 5869) over the shared secret bound to both public
keys, and AES-256-GCM whose associated data is mandatory. The associated data says what
the secret is for (e.g. consortium, sender, recipient and key fingerprint); opening with
any other associated data fails.

Two calls: :func:`seal` and :func:`unseal`. Every failure of :func:`unseal` (wrong key,
altered bytes, other associated data, malformed input) is the same opaque
:class:`KeyUnwrapError`, so a caller learns nothing about why a wrapped key was refused.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crypto.errors import CryptoError, CryptoInputError

__all__ = ["WRAP_MAGIC", "KeyUnwrapError", "seal", "unseal"]

WRAP_MAGIC: Final = b"FEKWRAP1"  # magic || ephemeral point (97 bytes) || nonce || GCM output
_CURVE: Final = ec.SECP384R1()
_POINT_BYTES: Final = 97  # uncompressed P-384 point: 0x04 || x || y
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_KEY_BYTES: Final = 32
_INFO: Final = b"fedembed key wrapping v1: ECDH P-384, HKDF-SHA384, AES-256-GCM"


class KeyUnwrapError(CryptoError):
    """A wrapped key cannot be opened (one opaque error for every cause)."""

    def __init__(self) -> None:
        super().__init__(
            "the wrapped key cannot be opened",
            expected="a key sealed to this recipient's public key, unaltered, for this purpose",
            fix="ask the sender to seal the key again to this recipient",
        )


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def _check_curve(key: ec.EllipticCurvePublicKey) -> None:
    if key.curve.name != _CURVE.name:
        raise CryptoInputError(
            f"the recipient key is on {key.curve.name}",
            expected=f"an EC public key on {_CURVE.name} (a kit's auth key)",
            fix="seal to the recipient's kit public key (auth.pub)",
        )


def _aead_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA384(),
        length=_KEY_BYTES,
        salt=None,
        info=_INFO + ephemeral + recipient,
    ).derive(shared)


def _check_associated_data(associated_data: bytes) -> None:
    if not isinstance(associated_data, bytes) or not associated_data:
        raise CryptoInputError(
            "the associated data is empty or not bytes",
            expected="non-empty bytes naming what the sealed secret is for",
            fix="bind the purpose, e.g. consortium id, sender, recipient and key fingerprint",
        )


def seal(recipient: ec.EllipticCurvePublicKey, secret: bytes, *, associated_data: bytes) -> bytes:
    """Encrypt ``secret`` so that only the holder of ``recipient``'s private key opens it.

    Args:
        recipient: The recipient's EC P-384 public key.
        secret: The bytes to wrap.
        associated_data: Non-empty bytes the recipient must present to open it.

    Raises:
        CryptoInputError: The key is not P-384, the secret is not bytes, or the
            associated data is empty.
    """
    if not isinstance(recipient, ec.EllipticCurvePublicKey):
        raise CryptoInputError(
            f"the recipient key is a {type(recipient).__name__}",
            expected="an EC P-384 public key",
            fix="load the recipient's auth.pub",
        )
    _check_curve(recipient)
    if not isinstance(secret, bytes):
        raise CryptoInputError(f"the secret is a {type(secret).__name__}", expected="bytes")
    _check_associated_data(associated_data)
    ephemeral = ec.generate_private_key(_CURVE)
    ephemeral_point = _point(ephemeral.public_key())
    shared = ephemeral.exchange(ec.ECDH(), recipient)
    key = _aead_key(shared, ephemeral_point, _point(recipient))
    nonce = os.urandom(_NONCE_BYTES)
    return (
        WRAP_MAGIC + ephemeral_point + nonce + AESGCM(key).encrypt(nonce, secret, associated_data)
    )


def unseal(
    recipient: ec.EllipticCurvePrivateKey, sealed: bytes, *, associated_data: bytes
) -> bytes:
    """Open what :func:`seal` wrapped for ``recipient``'s public key.

    Raises:
        KeyUnwrapError: For every failure (wrong key, altered or truncated bytes, other
            associated data, a point not on the curve): one opaque error.
        CryptoInputError: The associated data is empty (a caller's mistake, not an attack).
    """
    _check_associated_data(associated_data)
    head = len(WRAP_MAGIC)
    if (
        not isinstance(recipient, ec.EllipticCurvePrivateKey)
        or recipient.curve.name != _CURVE.name
        or not isinstance(sealed, bytes)
        or len(sealed) < head + _POINT_BYTES + _NONCE_BYTES + _TAG_BYTES
        or not sealed.startswith(WRAP_MAGIC)
    ):
        raise KeyUnwrapError()
    ephemeral_point = sealed[head : head + _POINT_BYTES]
    nonce = sealed[head + _POINT_BYTES : head + _POINT_BYTES + _NONCE_BYTES]
    body = sealed[head + _POINT_BYTES + _NONCE_BYTES :]
    try:
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, ephemeral_point)
        shared = recipient.exchange(ec.ECDH(), ephemeral)
        key = _aead_key(shared, ephemeral_point, _point(recipient.public_key()))
        return AESGCM(key).decrypt(nonce, body, associated_data)
    except (ValueError, InvalidTag):
        raise KeyUnwrapError() from None
