from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import CryptoInputError
from crypto.key_wrapping import WRAP_MAGIC, KeyUnwrapError, seal, unseal

RECIPIENT = ec.generate_private_key(ec.SECP384R1())
OTHER = ec.generate_private_key(ec.SECP384R1())
AD = b"consortium=c1;recipient=bank_b;sender=hospital-a;fingerprint=ab12"


@settings(max_examples=40, deadline=None)
@given(secret=st.binary(max_size=4096), associated_data=st.binary(min_size=1, max_size=256))
def test_round_trip(secret: bytes, associated_data: bytes) -> None:
    sealed = seal(RECIPIENT.public_key(), secret, associated_data=associated_data)
    assert sealed.startswith(WRAP_MAGIC)
    assert unseal(RECIPIENT, sealed, associated_data=associated_data) == secret


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_altered_byte_is_refused(data: st.DataObject) -> None:
    # Prepare
    sealed = bytearray(seal(RECIPIENT.public_key(), b"the CKKS secret context", associated_data=AD))
    index = data.draw(st.integers(min_value=0, max_value=len(sealed) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    sealed[index] ^= flip
    # Execute / Assert
    with pytest.raises(KeyUnwrapError):
        unseal(RECIPIENT, bytes(sealed), associated_data=AD)


def test_every_failure_is_the_same_opaque_error() -> None:
    # Prepare
    secret = b"x" * 100
    sealed = seal(RECIPIENT.public_key(), secret, associated_data=AD)
    attempts = [
        (OTHER, sealed, AD),  # another member's key
        (RECIPIENT, sealed, AD + b"!"),  # bound to another purpose
        (RECIPIENT, sealed[:-1], AD),  # truncated
        (RECIPIENT, sealed[: len(WRAP_MAGIC) + 20], AD),  # far too short
        (RECIPIENT, b"junk" + sealed[4:], AD),  # wrong magic
        (RECIPIENT, sealed[: len(WRAP_MAGIC)] + b"\x04" + b"\x00" * 96 + sealed[105:], AD),
        (ec.generate_private_key(ec.SECP256R1()), sealed, AD),  # another curve
    ]
    messages = set()
    # Execute
    for key, blob, associated in attempts:
        with pytest.raises(KeyUnwrapError) as info:
            unseal(key, blob, associated_data=associated)
        messages.add(str(info.value))
    # Assert: nothing tells the cases apart
    assert len(messages) == 1
    assert unseal(RECIPIENT, sealed, associated_data=AD) == secret


def test_each_seal_is_fresh() -> None:
    one = seal(RECIPIENT.public_key(), b"secret", associated_data=AD)
    two = seal(RECIPIENT.public_key(), b"secret", associated_data=AD)
    assert one != two  # a fresh ephemeral key and nonce each time
    assert b"secret" not in one


def test_associated_data_is_mandatory() -> None:
    with pytest.raises(CryptoInputError, match="associated data"):
        seal(RECIPIENT.public_key(), b"secret", associated_data=b"")
    sealed = seal(RECIPIENT.public_key(), b"secret", associated_data=AD)
    with pytest.raises(CryptoInputError, match="associated data"):
        unseal(RECIPIENT, sealed, associated_data=b"")


def test_only_p384_recipients() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(CryptoInputError, match="secp256r1"):
        seal(p256, b"secret", associated_data=AD)
    with pytest.raises(CryptoInputError, match="EC P-384"):
        seal(b"not a key", b"secret", associated_data=AD)  # type: ignore[arg-type]
