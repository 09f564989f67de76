"""Cluster descriptions: representatives, c-TF-IDF top terms, labels; and the map."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from analytics.cluster_description import class_tf_idf, describe_clusters
from analytics.cluster_map import cluster_map, project_2d

CARD = ["my card has not arrived", "when will my card arrive", "card delivery is late"]
REFUND = ["I want a refund", "refund for my purchase please", "how long does a refund take"]
NOISE_TEXT = ["hello there"]


def _records() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(0)
    vectors = np.vstack(
        [
            rng.normal([5.0, 0.0], 0.3, size=(3, 2)),
            rng.normal([0.0, 5.0], 0.3, size=(3, 2)),
            [[20.0, 20.0]],
        ]
    )
    labels = np.array([0, 0, 0, 1, 1, 1, -1])
    texts = CARD + REFUND + NOISE_TEXT
    return vectors, labels, [f"r{i}" for i in range(7)], texts


def test_top_terms_name_what_each_cluster_is_about() -> None:
    vectors, labels, ids, texts = _records()

    described = describe_clusters(vectors, labels, ids, texts)

    assert [d.cluster for d in described] == [0, 1]  # noise is not described
    assert described[0].top_terms[0][0] == "card"
    assert described[1].top_terms[0][0] == "refund"
    assert [d.size for d in described] == [3, 3]
    assert described[0].share == pytest.approx(3 / 7)


def test_class_tf_idf_follows_its_formula() -> None:
    texts = ["apple apple banana", "banana cherry"]

    weights = dict(class_tf_idf(texts, np.array([0, 1]), 2, top=10)[0])

    # cluster 0: 3 words, apple x2 and banana x1; f(apple)=2, f(banana)=2; A = (3+2)/2
    assert weights["apple"] == pytest.approx(2 / 3 * math.log(1 + 2.5 / 2))
    assert weights["banana"] == pytest.approx(1 / 3 * math.log(1 + 2.5 / 2))
    assert "cherry" not in weights


def test_representatives_are_the_members_nearest_the_centroid() -> None:
    vectors, labels, ids, texts = _records()

    described = describe_clusters(vectors, labels, ids, texts, representatives=2)

    members = vectors[:3]
    nearest = np.argsort(((members - members.mean(axis=0)) ** 2).sum(axis=1))[:2]
    assert described[0].representative_ids == [ids[i] for i in nearest]
    assert described[0].representative_texts == [texts[i] for i in nearest]


def test_medoid_anchor_puts_the_medoid_first() -> None:
    vectors = np.array([[0.0], [1.0], [2.0], [10.0]])

    described = describe_clusters(
        vectors, np.zeros(4, dtype=np.int64), list("abcd"), ["x"] * 4, anchor="medoid"
    )

    assert described[0].representative_ids[0] in {"b", "c"}  # both minimise the total


def test_labels_give_majority_and_purity() -> None:
    vectors, labels, ids, texts = _records()
    truth = ["card", "card", "refund", "refund", "refund", "refund", "other"]

    described = describe_clusters(vectors, labels, ids, texts, true_labels=truth)

    assert (described[0].majority_label, described[0].purity) == ("card", pytest.approx(2 / 3))
    assert (described[1].majority_label, described[1].purity) == ("refund", 1.0)
    assert described[0].to_json()["representatives"][0]["id"] in ids[:3]


def test_texts_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    vectors, labels, ids, texts = _records()

    with caplog.at_level(logging.DEBUG):
        describe_clusters(vectors, labels, ids, texts)

    assert all(t not in caplog.text for t in texts)


def test_stop_words_only_give_no_terms() -> None:
    assert class_tf_idf(["the a", "of the"], np.array([0, 1]), 2) == [[], []]


def test_map_is_a_png_with_noise_and_clusters(tmp_path: Path) -> None:
    vectors, labels, _, _ = _records()

    written = cluster_map(np.hstack([vectors, vectors**2]), labels, tmp_path / "m" / "map.png")

    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written.stat().st_size > 5000


def test_projection_keeps_the_largest_spread_first() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(200, 3)) * np.array([10.0, 3.0, 0.1])

    points = project_2d(vectors)

    assert points.shape == (200, 2)
    assert points[:, 0].var() > points[:, 1].var() > 1.0
