"""The CKKS block upload body: any ids and block round-trip; junk is refused clearly."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.ckks_search import EncryptedBlock
from crypto.errors import CryptoInputError
from index_client.block_format import BlockFormatError, pack_block_upload, unpack_block_upload

IDS = st.lists(st.text(max_size=40), max_size=20)
DIAGONALS = st.lists(st.binary(max_size=64), max_size=6)


@settings(max_examples=200, deadline=None)
@given(ids=IDS, diagonals=DIAGONALS)
def test_any_ids_and_block_round_trip(ids: list[str], diagonals: list[bytes]) -> None:
    # Prepare
    block = EncryptedBlock(count=len(ids), diagonals=tuple(diagonals))
    # Execute
    body = pack_block_upload(ids, block)
    # Assert
    assert unpack_block_upload(body) == (ids, block)


@settings(max_examples=100, deadline=None)
@given(ids=IDS, diagonals=DIAGONALS, cut=st.integers(min_value=1))
def test_a_truncated_body_is_refused(ids: list[str], diagonals: list[bytes], cut: int) -> None:
    # Prepare: cut anywhere; a cut header and a cut block are told apart
    body = pack_block_upload(ids, EncryptedBlock(count=len(ids), diagonals=tuple(diagonals)))
    truncated = body[: len(body) - 1 - cut % len(body)]
    header_end = 4 + len(json.dumps({"ids": ids}).encode())
    kind = BlockFormatError if len(truncated) < header_end else CryptoInputError
    # Execute / Assert
    with pytest.raises(kind, match="malformed"):
        unpack_block_upload(truncated)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00",
        b"\xff\xff\xff\x00{}",
        b"\x02\x00\x00\x00{}",
        b'\x0c\x00\x00\x00{"ids": 3}',
        b"\x04\x00\x00\x00[1] ",
        b'\x0c\x00\x00\x00{"ids": [1]}',
        b"\x03\x00\x00\x00\xff\xfe\xfd",
    ],
)
def test_a_malformed_header_is_refused_with_a_fix(body: bytes) -> None:
    with pytest.raises(BlockFormatError, match="malformed") as caught:
        unpack_block_upload(body)
    assert "pack_block_upload" in caught.value.fix


def test_a_malformed_block_after_a_good_header_is_a_crypto_input_error() -> None:
    body = pack_block_upload(["a"], EncryptedBlock(count=1, diagonals=(b"x",)))
    with pytest.raises(CryptoInputError, match="malformed"):
        unpack_block_upload(body + b"trailing")
