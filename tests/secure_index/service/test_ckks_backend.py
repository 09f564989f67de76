"""The CKKS wire formats: block uploads and score answers round-trip; junk is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.ckks_search import EncryptedBlock
from secure_index.errors import RequestError, StorageError
from secure_index.index.ckks_collections import ScoredBlock
from secure_index.service.ckks_backend import (
    decode_scored,
    encode_scored,
    pack_block_upload,
    unpack_block_upload,
)

IDS = st.lists(st.text(min_size=1, max_size=20), max_size=5)


@settings(max_examples=50, deadline=None)
@given(ids=IDS, diagonals=st.lists(st.binary(max_size=32), max_size=4))
def test_block_upload_round_trips(ids: list[str], diagonals: list[bytes]) -> None:
    block = EncryptedBlock(count=len(ids), diagonals=tuple(diagonals))
    assert unpack_block_upload(pack_block_upload(ids, block)) == (ids, block)


@settings(max_examples=50, deadline=None)
@given(
    blocks=st.lists(
        st.builds(ScoredBlock, owner=st.text(max_size=10), ids=IDS.map(tuple), answer=st.binary()),
        max_size=3,
    )
)
def test_score_answer_round_trips(blocks: list[ScoredBlock]) -> None:
    assert decode_scored(encode_scored(blocks)) == blocks


@pytest.mark.parametrize(
    "body",
    [b"", b"\x00", b"\xff\xff\xff\x00{}", b"\x02\x00\x00\x00{}", b'\x0c\x00\x00\x00{"ids": 3}'],
)
def test_junk_uploads_are_refused(body: bytes) -> None:
    with pytest.raises(RequestError, match="malformed"):
        unpack_block_upload(body)


def test_a_junk_store_answer_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="malformed"):
        decode_scored({"blocks": [{"owner": "a", "ids": [], "answer": "!!"}]})
