"""VectorSpace: the encoder space on the wire is all three fields or none, well formed."""

from __future__ import annotations

import hashlib

import pytest

from index_client.vector_space import SPACE_FIELDS, VectorSpace, VectorSpaceFormatError


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


INT8 = VectorSpace(_hex("minilm|onnx-int8"), "onnx-int8", _hex("minilm"))


def test_a_space_round_trips_through_its_wire_fields() -> None:
    # Execute
    fields = INT8.as_fields()
    # Assert
    assert tuple(fields) == SPACE_FIELDS
    assert VectorSpace.from_fields({**fields, "other": 1}) == INT8
    assert VectorSpace.from_fields({"items": []}) is None
    assert INT8.describe().startswith("onnx-int8 vectors of model " + _hex("minilm")[:12])


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"space": _hex("s"), "encoder_backend": "torch"}, "model_fingerprint missing"),
        ({"space": "ABC", "encoder_backend": "torch", "model_fingerprint": _hex("m")}, "space="),
        (
            {"space": _hex("s"), "encoder_backend": "Torch FP32", "model_fingerprint": _hex("m")},
            "encoder_backend=",
        ),
        ({"space": _hex("s"), "encoder_backend": "onnx", "model_fingerprint": 7}, "fingerprint="),
    ],
)
def test_a_partial_or_malformed_space_is_refused_naming_the_field(
    fields: dict[str, object], named: str
) -> None:
    # Execute / Assert
    with pytest.raises(VectorSpaceFormatError, match=named):
        VectorSpace.from_fields(fields)
