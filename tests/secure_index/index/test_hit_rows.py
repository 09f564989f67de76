"""The compiled hit builder against its pure-Python rule (hypothesis round-trips)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_index.index._hit_rows import hit_rows
from secure_index.index.collection_spec import Hit


def _reference(
    labels: np.ndarray,
    distances: np.ndarray,
    doc_ids: list[str | None],
    owners: list[str | None],
    offset: float,
) -> list[list[Hit]]:
    """The rule in plain Python: skip unknown labels and tombstones, score = offset - d."""
    rows = []
    for row_labels, row_distances in zip(labels.tolist(), distances.tolist(), strict=True):
        rows.append(
            [
                Hit.of(doc_ids[label], owners[label] or "", offset - distance)  # type: ignore[arg-type]
                for label, distance in zip(row_labels, row_distances, strict=True)
                if label < len(doc_ids) and doc_ids[label] is not None
            ]
        )
    return rows


@st.composite
def _results(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[str | None], list[str | None]]:
    size = draw(st.integers(0, 12))
    doc_ids = draw(
        st.lists(
            st.one_of(st.none(), st.text(min_size=1, max_size=8)), min_size=size, max_size=size
        )
    )
    owners = draw(
        st.lists(st.one_of(st.none(), st.sampled_from(["n1", "n2"])), min_size=size, max_size=size)
    )
    rows, k = draw(st.integers(0, 4)), draw(st.integers(0, 6))
    labels = np.array(
        draw(st.lists(st.integers(0, size + 3), min_size=rows * k, max_size=rows * k)),
        dtype=np.uint64,
    ).reshape(rows, k)
    floats = st.floats(-4, 4, width=32, allow_nan=False)
    distances = np.array(
        draw(st.lists(floats, min_size=rows * k, max_size=rows * k)), dtype=np.float32
    ).reshape(rows, k)
    return labels, distances, doc_ids, owners


@settings(max_examples=300, deadline=None)
@given(result=_results(), offset=st.sampled_from([0.0, 1.0]))
def test_hit_rows_equal_the_python_rule(
    result: tuple[np.ndarray, np.ndarray, list[str | None], list[str | None]], offset: float
) -> None:
    # Prepare
    labels, distances, doc_ids, owners = result
    # Execute
    hits = hit_rows(labels, distances, doc_ids, owners, Hit, offset, True)
    # Assert: same hits, same types, same float scores
    expected = _reference(labels, distances, doc_ids, owners, offset)
    assert hits == expected
    assert all(type(hit) is Hit for row in hits or [] for hit in row)


def test_signed_labels_are_read_too() -> None:
    hits = hit_rows(
        np.array([[1, 0]], dtype=np.int64),
        np.array([[0.5, 0.25]], np.float32),
        ["a", "b"],
        ["x", None],
        Hit,
        1.0,
        False,
    )
    assert hits == [[Hit.of("b", "", 0.5), Hit.of("a", "x", 0.75)]]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_distance_returns_none_only_when_asked(bad: float) -> None:
    labels = np.array([[0, 1]], dtype=np.uint64)
    distances = np.array([[0.1, bad]], dtype=np.float32)
    assert hit_rows(labels, distances, ["a", "b"], ["n", "n"], Hit, 1.0, True) is None
    kept = hit_rows(labels, distances, ["a", "b"], ["n", "n"], Hit, 1.0, False)
    assert kept is not None
    assert len(kept[0]) == 2


@pytest.mark.parametrize(
    ("labels", "distances", "doc_ids", "hit_type", "match"),
    [
        (np.zeros((1, 2), np.uint32), np.zeros((1, 2), np.float32), [], Hit, "8-byte integers"),
        (np.zeros((1, 2), np.uint64), np.zeros((1, 2), np.float64), [], Hit, "float32"),
        (np.zeros((1, 2), np.uint64), np.zeros((1, 2), np.float32), ("a",), Hit, "lists"),
        (np.zeros((1, 2), np.uint64), np.zeros((1, 2), np.float32), [], list, "tuple subclass"),
    ],
)
def test_arguments_of_the_wrong_type_raise_type_error(
    labels: np.ndarray, distances: np.ndarray, doc_ids: object, hit_type: type, match: str
) -> None:
    with pytest.raises(TypeError, match=match):
        hit_rows(labels, distances, doc_ids, [], hit_type, 1.0, False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("labels", "distances", "match"),
    [
        (np.zeros(2, np.uint64), np.zeros(2, np.float32), "2-D"),
        (np.zeros((1, 2), np.uint64), np.zeros((1, 3), np.float32), "one shape"),
        (np.zeros((2, 4), np.uint64)[:, ::2], np.zeros((2, 2), np.float32), "contiguous"),
        (np.zeros((2, 2), np.uint64), np.zeros((2, 4), np.float32)[:, ::2], "contiguous"),
    ],
)
def test_arrays_of_the_wrong_shape_or_layout_raise_value_error(
    labels: np.ndarray, distances: np.ndarray, match: str
) -> None:
    # Non-contiguous arrays are refused by numpy's buffer export, with numpy's message.
    with pytest.raises(ValueError, match=match):
        hit_rows(labels, distances, [], [], Hit, 1.0, False)
