"""HnswCollection: upsert, delete with tombstone reuse, filters, validation, concurrency."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from embedding_core.progress import PROGRESS_ENV
from secure_index.errors import RequestError
from secure_index.index import hnsw_collection
from secure_index.index.document_table import DocumentTable
from secure_index.index.graph_image import anonymous_buffer
from secure_index.index.hnsw_collection import (
    EXACT_FILTER_LIMIT,
    CollectionSpec,
    HnswCollection,
    Metric,
    Protection,
)


def _unit(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _collection(metric: Metric = Metric.COSINE, d: int = 32) -> HnswCollection:
    return HnswCollection(CollectionSpec("test", d, metric=metric, ef_search=200))


@pytest.mark.parametrize("metric", list(Metric))
def test_each_vector_finds_itself_first(metric: Metric) -> None:
    # Prepare
    coll = _collection(metric)
    x = _unit(500)
    coll.add_items([f"d{i}" for i in range(500)], x, owner="node-0")
    # Execute
    hits = coll.knn_query(x[:50], k=3)
    # Assert: HNSW is approximate, and hnswlib inserts a batch on every core, so the graph
    # differs from run to run. 300 idle runs found all 50 every time; one CI run under load
    # missed one (d443 first for d2). The bound leaves that margin and still fails if the
    # search stops finding exact matches.
    found = sum(h[0].doc_id == f"d{i}" for i, h in enumerate(hits))
    assert found >= 48
    assert all(h[0].owner == "node-0" for h in hits)
    assert all(h[0].score >= h[1].score >= h[2].score for h in hits)
    if metric is not Metric.L2:  # a vector's similarity to itself
        selves = [h[0].score for i, h in enumerate(hits) if h[0].doc_id == f"d{i}"]
        assert selves == pytest.approx([1.0] * len(selves), abs=1e-5)


def test_upsert_replaces_the_vector_and_keeps_one_entry() -> None:
    # Prepare
    coll = _collection()
    x = _unit(100)
    coll.add_items([f"d{i}" for i in range(100)], x, owner="n")
    new = _unit(1, seed=9)
    # Execute
    inserted = coll.add_items(["d7"], new, owner="n")
    # Assert
    assert inserted == 0
    assert len(coll) == 100
    assert coll.knn_query(new, k=1)[0][0].doc_id == "d7"
    assert coll.knn_query(x[7], k=1)[0][0].doc_id != "d7"


def test_deleted_documents_vanish_and_their_slots_are_reused() -> None:
    # Prepare
    coll = _collection()
    x = _unit(200)
    coll.add_items([f"d{i}" for i in range(200)], x, owner="n")
    capacity = coll.capacity()
    # Execute
    removed = coll.delete([f"d{i}" for i in range(0, 200, 2)] + ["missing"])
    after_delete = coll.knn_query(x[0], k=200)[0]
    coll.add_items([f"e{i}" for i in range(100)], _unit(100, seed=3), owner="n")
    # Assert
    assert removed == 100
    assert len(after_delete) == 100
    assert all(int(h.doc_id[1:]) % 2 == 1 for h in after_delete)
    assert len(coll) == 200
    assert coll.capacity() == capacity


def test_capacity_grows_past_the_initial_size() -> None:
    coll = _collection(d=8)
    x = _unit(3000, d=8)
    coll.add_items([f"d{i}" for i in range(3000)], x, owner="n")
    assert len(coll) == 3000
    assert coll.knn_query(x[2999], k=1)[0][0].doc_id == "d2999"


@pytest.mark.parametrize("n", [300, EXACT_FILTER_LIMIT + 700])
def test_filters_on_owner_and_tags(n: int) -> None:
    # Prepare: two owners; tags "even"/"odd" and "blue" on every third
    coll = _collection(d=16)
    x = _unit(2 * n, d=16)
    for owner, part in (("a", range(0, n)), ("b", range(n, 2 * n))):
        ids = [f"d{i}" for i in part]
        tags = [["even" if i % 2 == 0 else "odd"] + (["blue"] if i % 3 == 0 else []) for i in part]
        coll.add_items(ids, x[list(part)], owner=owner, tags=tags)
    # Execute
    by_owner = coll.knn_query(x[:5], k=10, owner="b")
    by_tags = coll.knn_query(x[:5], k=10, tags=["even", "blue"])
    both = coll.knn_query(x[:5], k=10, owner="a", tags=["odd"])
    nobody = coll.knn_query(x[:5], k=10, owner="c")
    # Assert
    assert all(h.owner == "b" for row in by_owner for h in row)
    assert len(by_owner[0]) == 10
    assert all(int(h.doc_id[1:]) % 6 == 0 for row in by_tags for h in row)
    assert all(h.owner == "a" and int(h.doc_id[1:]) % 2 == 1 for row in both for h in row)
    assert nobody == [[] for _ in range(5)]


def test_filtered_exact_results_match_brute_force() -> None:
    coll = _collection(Metric.L2, d=16)
    x = _unit(1000, d=16)
    coll.add_items(
        [f"d{i}" for i in range(1000)], x, owner="n", tags=[[f"t{i % 4}"] for i in range(1000)]
    )
    q = _unit(3, d=16, seed=5)
    hits = coll.knn_query(q, k=5, tags=["t1"])
    for row, qv in zip(hits, q, strict=True):
        idx = np.arange(1, 1000, 4)
        d = ((x[idx] - qv) ** 2).sum(axis=1)
        expected = [f"d{i}" for i in idx[np.argsort(d)[:5]]]
        assert [h.doc_id for h in row] == expected


@pytest.mark.parametrize(
    ("ids", "vectors", "match"),
    [
        (["a"], np.zeros((1, 31)), "dimension 32"),
        (["a"], np.full((1, 32), np.nan), "NaN"),
        (["a", "a"], _unit(2), "repeats"),
        (["has space"], _unit(1), "not allowed"),
        (["a", "b"], _unit(1), "one vector per id"),
        (["a"], np.zeros((1, 32)), "zero vector"),
        (["a"], [["x"] * 32], "not numeric"),
    ],
)
def test_bad_batches_are_refused_and_change_nothing(
    ids: list[str], vectors: object, match: str
) -> None:
    coll = _collection()
    coll.add_items(["keep"], _unit(1), owner="n")
    with pytest.raises(RequestError, match=match):
        coll.add_items(ids, vectors, owner="n")
    assert len(coll) == 1


def test_bad_tags_and_k_are_refused() -> None:
    coll = _collection()
    with pytest.raises(RequestError, match="tag"):
        coll.add_items(["a"], _unit(1), owner="n", tags=[["no spaces allowed"]])
    with pytest.raises(RequestError, match="k >= 1"):
        coll.knn_query(_unit(1), k=0)


@pytest.mark.parametrize("metric", [Metric.INNER_PRODUCT, Metric.L2])
def test_single_query_path_matches_the_batch_path(metric: Metric) -> None:
    # Prepare: one 1-D float32 query takes the lean single-query path, a batch does not
    coll = _collection(metric)
    x = _unit(300)
    coll.add_items([f"d{i}" for i in range(300)], x, owner="node-0")
    coll.delete(["d0", "d7"])
    queries = _unit(20, seed=1)
    # Execute
    batch = coll.knn_query(queries, k=5)
    single = [coll.knn_query(q, k=5)[0] for q in queries]
    # Assert: same documents, owners and scores, best first
    assert single == batch
    assert all(h.doc_id not in {"d0", "d7"} for row in single for h in row)
    assert all(row[0].score >= row[-1].score for row in single)
    expected = (
        queries @ x.T
        if metric is Metric.INNER_PRODUCT
        else -((queries[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    )
    for q, row in enumerate(single):
        for hit in row:
            assert hit.score == pytest.approx(expected[q, int(hit.doc_id[1:])], abs=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("metric", list(Metric))
def test_non_finite_single_queries_are_refused(metric: Metric, bad: float) -> None:
    coll = _collection(metric)
    coll.add_items([f"d{i}" for i in range(50)], _unit(50), owner="n")
    query = _unit(1)[0]
    query[3] = bad
    with pytest.raises(RequestError, match="NaN or infinity"):
        coll.knn_query(query, k=3)


def test_deleted_documents_never_surface_and_scores_are_similarities() -> None:
    # Prepare: a, b, c along three axes; b is deleted (a tombstone in the table). Labels
    # hnswlib may still hand over mid-delete are skipped by ``hit_rows`` (test_hit_rows.py).
    coll = _collection(Metric.INNER_PRODUCT, d=4)
    coll.add_items(["a", "b", "c"], np.eye(4, dtype=np.float32)[:3], owner="n")
    coll.delete(["b"])
    query = np.array([0.6, 0.8, 0.0, 0.0], dtype=np.float32)
    # Execute
    (hits,) = coll.knn_query(query, k=2)
    # Assert: the live documents only, scored by their inner product with the query
    assert [(h.doc_id, h.owner) for h in hits] == [("a", "n"), ("c", "n")]
    assert [h.score for h in hits] == pytest.approx([0.6, 0.0], abs=1e-6)
    assert hits[0].as_dict() == {"doc_id": "a", "owner": "n", "score": hits[0].score}


def test_single_query_on_an_empty_collection_finds_nothing() -> None:
    assert _collection(Metric.INNER_PRODUCT).knn_query(_unit(1)[0], k=3) == [[]]


def test_spec_validation() -> None:
    with pytest.raises(RequestError, match="collection name"):
        CollectionSpec("bad name", 4)
    with pytest.raises(RequestError, match="l2"):
        CollectionSpec("x", 4, metric=Metric.COSINE, protection=Protection.DCPE)
    with pytest.raises(RequestError, match="dimension"):
        CollectionSpec("x", 0)


def test_serialize_round_trip_through_an_anonymous_buffer() -> None:
    # Prepare
    coll = _collection()
    x = _unit(300)
    coll.add_items([f"d{i}" for i in range(300)], x, owner="n", tags=[["t"]] * 300)
    coll.delete(["d5"])
    # Execute
    with coll.lock.read():
        chunks, size, table, count = coll.serialize()
    image = anonymous_buffer(size)
    image[:] = b"".join(bytes(c) for c in chunks)
    loaded = HnswCollection.from_image(
        coll.spec, image, DocumentTable(table), capacity=coll.capacity()
    )
    # Assert
    assert count == 299
    assert len(loaded) == 299
    assert loaded.knn_query(x[:20], k=1) == coll.knn_query(x[:20], k=1)
    assert all(h.doc_id != "d5" for h in loaded.knn_query(x[5], k=10)[0])
    assert loaded.knn_query(x[1], k=1, tags=["t"])[0][0].doc_id == "d1"


def test_concurrent_queries_during_inserts_and_deletes_stay_correct() -> None:
    # Prepare: 1000 stable documents that must always be found; writers churn others
    coll = _collection()
    stable = _unit(1000, seed=1)
    coll.add_items([f"s{i}" for i in range(1000)], stable, owner="n")
    errors: list[BaseException] = []
    wrong = []
    stop = threading.Event()

    def writer(w: int) -> None:
        try:
            for b in range(40):
                ids = [f"w{w}-{b}-{i}" for i in range(25)]
                coll.add_items(ids, _unit(25, seed=100 * w + b), owner="n")
                if b % 3 == 0:
                    coll.delete(ids[:10])
        except BaseException as exc:
            errors.append(exc)

    def reader(r: int) -> None:
        rng = np.random.default_rng(r)
        try:
            while not stop.is_set():
                i = int(rng.integers(1000))
                top = coll.knn_query(stable[i], k=5)[0]
                if top[0].doc_id != f"s{i}":
                    wrong.append((i, top[0].doc_id))
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    readers = [threading.Thread(target=reader, args=(r,)) for r in range(4)]
    # Execute
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()  # a deadlock is caught by pytest-timeout; a loaded machine only slows it
    stop.set()
    for t in readers:
        t.join()
    # Assert
    assert not errors
    assert not wrong
    assert len(coll) == 1000 + 3 * 40 * 25 - 3 * 14 * 10


def test_a_large_batch_is_built_in_chunks_with_progress(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: a "large" batch of 120 vectors in chunks of 16, progress as log lines
    monkeypatch.setattr(hnsw_collection, "BUILD_PROGRESS_MIN", 100)
    monkeypatch.setattr(hnsw_collection, "BUILD_CHUNK", 16)
    monkeypatch.setenv(PROGRESS_ENV, "log")
    caplog.set_level(logging.INFO, logger="embedding_core.progress")
    coll = _collection(Metric.INNER_PRODUCT)
    x = _unit(120)
    # Execute
    inserted = coll.add_items([f"d{i}" for i in range(120)], x, owner="n")
    # Assert: every vector is in the graph under its own id, and the build was reported
    assert inserted == 120
    assert [h[0].doc_id for h in coll.knn_query(x, k=1)] == [f"d{i}" for i in range(120)]
    lines = [r.getMessage() for r in caplog.records if r.name == "embedding_core.progress"]
    assert lines[0] == "index build test: started (120 vectors)"
    assert lines[-1].startswith("index build test: done, 120 vectors")
