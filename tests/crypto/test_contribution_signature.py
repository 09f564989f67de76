"""ECDSA-SHA384 contribution signatures: verify with the signer's key, one opaque error else."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.contribution_signature import (
    ContributionSignatureError,
    ContributionSigner,
    verify_contribution_signature,
)
from crypto.errors import KeyManagementError

MESSAGE = b"fedembed/ckks-contribution/v1\n{}"


def _openssh_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


def _openssh_public(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def test_a_signature_verifies_with_the_signer_key_and_the_standard_algorithm() -> None:
    # Prepare
    key = ec.generate_private_key(ec.SECP384R1())
    signer = ContributionSigner.from_openssh(_openssh_private(key))
    # Execute
    signature = signer.sign(MESSAGE)
    # Assert: our verifier accepts it, and so does plain ECDSA-SHA384 (peer check).
    verify_contribution_signature(_openssh_public(key), MESSAGE, signature)
    key.public_key().verify(signature, MESSAGE, ec.ECDSA(hashes.SHA384()))


def _cases() -> dict[str, tuple[str, bytes, object]]:
    key = ec.generate_private_key(ec.SECP384R1())
    other = ec.generate_private_key(ec.SECP384R1())
    p256 = ec.generate_private_key(ec.SECP256R1())
    signature = ContributionSigner(key).sign(MESSAGE)
    p256_signature = p256.sign(MESSAGE, ec.ECDSA(hashes.SHA384()))
    return {
        "other-key": (_openssh_public(other), MESSAGE, signature),
        "other-message": (_openssh_public(key), MESSAGE + b"x", signature),
        "flipped-byte": (
            _openssh_public(key),
            MESSAGE,
            signature[:-1] + bytes([signature[-1] ^ 1]),
        ),
        "not-a-key": ("ssh-ed25519 AAAA", MESSAGE, signature),
        "p256-key": (_openssh_public(p256), MESSAGE, p256_signature),
        "not-bytes": (_openssh_public(key), MESSAGE, signature.hex()),
        "empty": (_openssh_public(key), MESSAGE, b""),
    }


@pytest.mark.parametrize(
    "case",
    ["other-key", "other-message", "flipped-byte", "not-a-key", "p256-key", "not-bytes", "empty"],
)
def test_every_verification_failure_is_the_same_opaque_error(case: str) -> None:
    # Prepare
    public_key, message, signature = _cases()[case]
    # Execute / Assert
    with pytest.raises(ContributionSignatureError) as caught:
        verify_contribution_signature(public_key, message, signature)  # type: ignore[arg-type]
    assert str(caught.value) == str(ContributionSignatureError())


def test_a_signer_needs_a_p384_key() -> None:
    # Prepare
    p256 = ec.generate_private_key(ec.SECP256R1())
    # Execute / Assert
    with pytest.raises(KeyManagementError, match="P-384"):
        ContributionSigner(p256)
    with pytest.raises(KeyManagementError, match="cannot be loaded"):
        ContributionSigner.from_openssh(b"not a key")
