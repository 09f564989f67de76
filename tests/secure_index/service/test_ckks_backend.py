"""The store's CKKS score answers round-trip; a junk answer is a storage error.

(The block upload format is :mod:`index_client.block_format`, tested in tests/index_client.)
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_index.errors import StorageError
from secure_index.index.ckks_collections import ScoredBlock
from secure_index.service.ckks_backend import decode_scored, encode_scored

IDS = st.lists(st.text(min_size=1, max_size=20), max_size=5)


@settings(max_examples=50, deadline=None)
@given(
    blocks=st.lists(
        st.builds(ScoredBlock, owner=st.text(max_size=10), ids=IDS.map(tuple), answer=st.binary()),
        max_size=3,
    )
)
def test_score_answer_round_trips(blocks: list[ScoredBlock]) -> None:
    assert decode_scored(encode_scored(blocks)) == blocks


def test_a_junk_store_answer_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="malformed"):
        decode_scored({"blocks": [{"owner": "a", "ids": [], "answer": "!!"}]})
