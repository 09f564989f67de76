"""AesGcmAead: golden vector, round trips, opaque failures, mandatory associated data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secure_index.sealing.aead import AEAD_OVERHEAD, AesGcmAead, DecryptionError

# McGrew and Viega, "The Galois/Counter Mode of Operation (GCM)", test case 16
# (AES-256, 96-bit IV, with associated data).
GCM_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
GCM_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_PLAINTEXT = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
GCM_CIPHERTEXT = bytes.fromhex(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
)
GCM_TAG = bytes.fromhex("76fc6ece0f4e1768cddf8853bb2d551b")
KEY = bytes(range(32))


def test_wire_format_is_nonce_ciphertext_tag_on_the_gcm_spec_vector() -> None:
    # Prepare
    aead = AesGcmAead(GCM_KEY)
    # Execute
    plaintext = aead.decrypt(GCM_IV + GCM_CIPHERTEXT + GCM_TAG, GCM_AAD)
    # Assert
    assert plaintext == GCM_PLAINTEXT


@given(plaintext=st.binary(max_size=2048), ad=st.binary(min_size=1, max_size=64))
def test_round_trip(plaintext: bytes, ad: bytes) -> None:
    aead = AesGcmAead(KEY)
    ciphertext = aead.encrypt(plaintext, ad)
    assert len(ciphertext) == len(plaintext) + AEAD_OVERHEAD
    assert aead.decrypt(ciphertext, ad) == plaintext


def test_each_encryption_uses_a_fresh_nonce() -> None:
    aead = AesGcmAead(KEY)
    first, second = aead.encrypt(b"same", b"ad"), aead.encrypt(b"same", b"ad")
    assert first[:12] != second[:12]
    assert first != second


@given(data=st.data())
def test_any_flipped_bit_fails_with_the_opaque_error(data: st.DataObject) -> None:
    aead = AesGcmAead(KEY)
    ciphertext = bytearray(aead.encrypt(b"vector bytes and a document id", b"context"))
    position = data.draw(st.integers(0, len(ciphertext) - 1))
    bit = data.draw(st.integers(0, 7))
    ciphertext[position] ^= 1 << bit
    with pytest.raises(DecryptionError, match=r"^decryption failed$"):
        aead.decrypt(bytes(ciphertext), b"context")


@pytest.mark.parametrize(
    ("key", "ciphertext_of", "ad"),
    [
        (bytes(32), lambda c: c, b"context"),  # wrong key
        (KEY, lambda c: c, b"other context"),  # wrong associated data
        (KEY, lambda c: c[:-1], b"context"),  # truncated tag
        (KEY, lambda c: c[: AEAD_OVERHEAD - 1], b"context"),  # shorter than nonce + tag
        (KEY, lambda c: c + b"\x00", b"context"),  # extended
    ],
    ids=["wrong-key", "wrong-ad", "truncated", "too-short", "extended"],
)
def test_wrong_key_ad_or_length_fails(key: bytes, ciphertext_of: object, ad: bytes) -> None:
    ciphertext = AesGcmAead(KEY).encrypt(b"secret", b"context")
    with pytest.raises(DecryptionError, match=r"^decryption failed$"):
        AesGcmAead(key).decrypt(ciphertext_of(ciphertext), ad)  # type: ignore[operator]


@pytest.mark.parametrize("ad", [b"", "text", None, bytearray(b"x")])
def test_associated_data_must_be_non_empty_bytes(ad: object) -> None:
    aead = AesGcmAead(KEY)
    with pytest.raises(ValueError, match="associated_data"):
        aead.encrypt(b"x", ad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="associated_data"):
        aead.decrypt(b"\x00" * 40, ad)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33])
def test_only_256_bit_keys_are_accepted(size: int) -> None:
    with pytest.raises(ValueError, match="32-byte"):
        AesGcmAead(bytes(size))


def test_the_key_does_not_leave_the_object() -> None:
    aead = AesGcmAead(KEY)
    assert KEY.hex() not in repr(aead)
    assert "hidden" in repr(aead)
    assert not hasattr(aead, "__dict__")
    for name in dir(aead):
        value = getattr(aead, name)
        assert not (isinstance(value, (bytes, bytearray)) and KEY in value), name
