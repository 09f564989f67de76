"""Signatures on a node's contribution: ECDSA over P-384 with SHA-384 (FIPS 186-5).

A member node signs the bytes that name its contribution (see
:mod:`federation.contributions`) with the SuperNode authentication key of its kit (an EC
P-384 key in OpenSSH private format); the coordinator and the decrypting node verify the
signature against the consortium's authorised node keys (OpenSSH public format).

Verification fails with one opaque :class:`ContributionSignatureError` whatever was
wrong (unknown key format, another curve, malformed or wrong signature), so a prober
learns nothing from the error but "not verified".
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.errors import CryptoError, KeyManagementError

__all__ = [
    "ContributionSignatureError",
    "ContributionSigner",
    "verify_contribution_signature",
]

_CURVE = ec.SECP384R1
_HASH = hashes.SHA384


class ContributionSignatureError(CryptoError):
    """A contribution's signature does not verify (one error for every cause)."""

    def __init__(self) -> None:
        super().__init__(
            "the contribution signature does not verify",
            expected="a signature by an authorised node key over this contribution",
            fix="drop the contribution",
        )


class ContributionSigner:
    """Signs contributions with a node's EC P-384 key (the kit's ``auth.key``).

    Args:
        private_key: The node's private key.

    Raises:
        KeyManagementError: The key is not an EC P-384 key.
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, _CURVE
        ):
            raise KeyManagementError(
                "the node signing key is not an EC P-384 key",
                expected="the kit's auth.key (EC P-384, OpenSSH format)",
                fix="re-provision the node kit",
            )
        self._key = private_key

    @classmethod
    def from_openssh(cls, data: bytes) -> ContributionSigner:
        """Load an unencrypted OpenSSH private key (the kit's ``auth.key``).

        Raises:
            KeyManagementError: The bytes are not an unencrypted EC P-384 OpenSSH key.
        """
        try:
            key = serialization.load_ssh_private_key(data, None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyManagementError(
                "the node signing key cannot be loaded",
                expected="an unencrypted OpenSSH EC P-384 private key (the kit's auth.key)",
                fix="re-provision the node kit",
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyManagementError(
                "the node signing key is not an EC key",
                expected="the kit's auth.key (EC P-384, OpenSSH format)",
                fix="re-provision the node kit",
            )
        return cls(key)

    def sign(self, message: bytes) -> bytes:
        """The DER-encoded ECDSA-SHA384 signature of ``message``."""
        return bytes(self._key.sign(message, ec.ECDSA(_HASH())))


def _public_key(openssh: str) -> ec.EllipticCurvePublicKey:
    key = serialization.load_ssh_public_key(openssh.encode("ascii"))
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, _CURVE):
        raise ValueError("not an EC P-384 key")
    return key


def verify_contribution_signature(public_key: str, message: bytes, signature: bytes) -> None:
    """Check that ``signature`` is the ECDSA-SHA384 signature of ``message`` by ``public_key``.

    Args:
        public_key: An authorised node key in OpenSSH public format.
        message: The signed bytes.
        signature: The DER-encoded signature.

    Raises:
        ContributionSignatureError: For any failure (opaque by design).
    """
    try:
        if not isinstance(signature, bytes) or not isinstance(message, bytes):
            raise TypeError("bytes expected")
        _public_key(public_key).verify(signature, message, ec.ECDSA(_HASH()))
    except (InvalidSignature, ValueError, TypeError, UnicodeError, UnsupportedAlgorithm):
        raise ContributionSignatureError() from None
