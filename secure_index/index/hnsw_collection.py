"""One collection: an hnswlib HNSW graph plus its document table, safe for threads.

HNSW is Malkov and Yashunin, "Efficient and robust approximate nearest neighbor search
using Hierarchical Navigable Small World graphs", IEEE TPAMI 2020; the implementation
is hnswlib. hnswlib allows parallel queries but not queries during inserts, deletes or
resizes, so every mutation takes the write side of a :class:`ReaderWriterLock` and every
query the read side. Deleted labels become tombstones that later inserts reuse
(``allow_replace_deleted``). The graph is serialised into an anonymous in-memory file
(``memfd``), never a plaintext file on disk.
"""

from __future__ import annotations

import logging
import mmap
import re
from collections.abc import Sequence
from typing import cast

import hnswlib
import numpy as np

from embedding_core.progress import Progress
from secure_index.errors import RequestError
from secure_index.index._hit_rows import hit_rows
from secure_index.index.collection_spec import (
    CollectionSpec,
    Hit,
    Metric,
    Protection,
    validate_doc_id,
)
from secure_index.index.document_table import DocumentRow, DocumentTable
from secure_index.index.graph_image import graph_chunks, graph_from_buffer
from secure_index.index.rwlock import ReaderWriterLock

__all__ = [
    "CollectionSpec",
    "Hit",
    "HnswCollection",
    "Metric",
    "Protection",
    "validate_doc_id",
]

logger = logging.getLogger(__name__)

MAX_TAGS = 32
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
INITIAL_CAPACITY = 1024
_FLOAT32 = np.dtype(np.float32)
EXACT_FILTER_LIMIT = 4096  # filtered queries over at most this many documents are exact
# hnswlib's knn_query with num_threads=-1 starts one std::thread per core for every call,
# even for a single query (its "few rows" shortcut only applies to a positive count):
# about 40 us per call here. Small batches run on the calling thread.
PARALLEL_MIN_QUERIES = 16
# A batch of at least this many vectors is an index build: inserted in chunks of
# BUILD_CHUNK with a progress bar (log lines without a terminal).
BUILD_PROGRESS_MIN = 50_000
BUILD_CHUNK = 10_000


class HnswCollection:
    """A thread-safe HNSW index with document metadata.

    Args:
        spec: The collection's fixed parameters.
        index: A loaded hnswlib index (from a snapshot) or ``None`` for a new one.
        table: The matching document table, or ``None`` for a new one.
    """

    def __init__(
        self,
        spec: CollectionSpec,
        *,
        index: hnswlib.Index | None = None,
        table: DocumentTable | None = None,
    ) -> None:
        self.spec = spec
        self._lock = ReaderWriterLock()
        if index is None:
            index = hnswlib.Index(space=str(spec.metric), dim=spec.dimension)
            index.init_index(
                max_elements=INITIAL_CAPACITY,
                ef_construction=spec.ef_construction,
                M=spec.m,
                allow_replace_deleted=True,
            )
        index.set_ef(spec.ef_search)
        self._index = index
        self._single_shape = (spec.dimension,)
        self._cosine = spec.metric is Metric.COSINE
        self._score_offset = 0.0 if spec.metric is Metric.L2 else 1.0  # score = offset - d
        self._table = table if table is not None else DocumentTable()

    @property
    def lock(self) -> ReaderWriterLock:
        """The collection's reader-writer lock (the store snapshots under it)."""
        return self._lock

    def __len__(self) -> int:
        return len(self._table)

    # -- validation ------------------------------------------------------------------------

    def check_vectors(self, vectors: object, *, count: int | None = None) -> np.ndarray:
        """Return ``vectors`` as a C-contiguous float32 (n, d) array or raise RequestError."""
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise RequestError(
                "vectors are not numeric", expected="a list of lists of numbers", fix=str(exc)
            ) from None
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.spec.dimension:
            raise RequestError(
                f"vectors have shape {tuple(array.shape)} for collection {self.spec.name!r}",
                expected=f"vectors of dimension {self.spec.dimension}",
                fix="embed with the collection's model (all-MiniLM-L6-v2: 384)",
            )
        if count is not None and array.shape[0] != count:
            raise RequestError(
                f"{array.shape[0]} vectors for {count} ids",
                expected="one vector per id",
                fix="send as many vectors as ids",
            )
        if not np.isfinite(array).all():
            raise RequestError(
                "vectors contain NaN or infinity",
                expected="finite numbers",
                fix="re-embed the documents",
            )
        if self.spec.metric is Metric.COSINE and (np.linalg.norm(array, axis=1) == 0).any():
            raise RequestError(
                "a zero vector has no cosine similarity",
                expected="non-zero vectors",
                fix="drop empty documents before embedding",
            )
        return np.ascontiguousarray(array)

    # -- mutations -------------------------------------------------------------------------

    def validate_batch(
        self,
        doc_ids: Sequence[str],
        vectors: object,
        tags: Sequence[Sequence[str]] | None,
    ) -> tuple[list[str], np.ndarray, tuple[tuple[str, ...], ...]]:
        """Check an upsert batch without changing anything; returns it normalised."""
        ids = [validate_doc_id(d) for d in doc_ids]
        if len(set(ids)) != len(ids):
            raise RequestError(
                "a batch repeats a document id",
                expected="each id once per batch",
                fix="deduplicate the batch",
            )
        array = self.check_vectors(vectors, count=len(ids))
        tag_lists = tuple(tuple(t) for t in tags) if tags is not None else tuple(() for _ in ids)
        bad_tag = next(
            (
                t
                for tl in tag_lists
                for t in tl
                if not isinstance(t, str) or not TAG_PATTERN.match(t)
            ),
            None,
        )
        if len(tag_lists) != len(ids) or any(len(t) > MAX_TAGS for t in tag_lists) or bad_tag:
            raise RequestError(
                "tags do not match the ids" if bad_tag is None else f"tag {str(bad_tag)[:40]!r}",
                expected=f"one list of at most {MAX_TAGS} tags per id, tags of 1-64 characters "
                "from A-Z a-z 0-9 _ . : -",
                fix="send short, opaque tags aligned with ids",
            )
        return ids, array, tag_lists

    def add_items(
        self,
        doc_ids: Sequence[str],
        vectors: object,
        *,
        owner: str,
        tags: Sequence[Sequence[str]] | None = None,
    ) -> int:
        """Insert or replace documents (upsert); returns how many were new."""
        ids, array, tag_lists = self.validate_batch(doc_ids, vectors, tags)
        if not ids:
            return 0
        with self._lock.write():
            labels = self._table.upsert(ids, owner=owner, tags=tag_lists)
            needed = self._index.get_current_count() + sum(new for _, new in labels)
            if needed > self._index.get_max_elements():
                capacity = max(needed, 2 * self._index.get_max_elements())
                self._index.resize_index(capacity)
                logger.info("index: resized %s to %d", self.spec.name, capacity)
            label_array = np.array([lab for lab, _ in labels], dtype=np.uint64)
            if len(array) < BUILD_PROGRESS_MIN:
                self._index.add_items(array, label_array, replace_deleted=True)
            else:
                self._build(array, label_array)
        return sum(new for _, new in labels)

    def _build(self, array: np.ndarray, labels: np.ndarray) -> None:
        """Insert a large batch in chunks, reporting progress (call under the write lock)."""
        what = f"index build {self.spec.name}"
        with Progress(len(array), what=what, unit="vectors") as progress:
            for start in range(0, len(array), BUILD_CHUNK):
                stop = start + BUILD_CHUNK
                self._index.add_items(array[start:stop], labels[start:stop], replace_deleted=True)
                progress.advance(len(labels[start:stop]))

    def foreign_ids(self, doc_ids: Sequence[str], *, owner: str) -> list[str]:
        """The ids among ``doc_ids`` that exist and belong to another owner."""
        with self._lock.read():
            foreign = []
            for doc_id in doc_ids:
                label = self._table.label_of(doc_id)
                found = None if label is None else self._table.resolve(label)
                if found is not None and found[1] != owner:
                    foreign.append(doc_id)
            return foreign

    def rows(self, doc_ids: Sequence[str]) -> list[DocumentRow]:
        """Metadata rows of the given documents (missing ids are skipped)."""
        with self._lock.read():
            return self._table.rows(doc_ids)

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents (tombstones, reused by later inserts); returns how many."""
        ids = [validate_doc_id(d) for d in doc_ids]
        with self._lock.write():
            labels = self._table.delete(ids)
            for label in labels:
                self._index.mark_deleted(label)
        return len(labels)

    # -- queries ---------------------------------------------------------------------------

    def knn_query(
        self,
        vectors: object,
        k: int,
        *,
        owner: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[list[Hit]]:
        """The ``k`` nearest documents of each query vector, best first."""
        if (
            type(vectors) is np.ndarray
            and vectors.dtype is _FLOAT32
            and vectors.shape == self._single_shape
            and type(k) is int
            and k >= 1
            and owner is None
            and not tags
            and not self._cosine
        ):
            hits = self._single(vectors, k)
            if hits is not None:
                return hits
        if not isinstance(k, int) or k < 1:
            raise RequestError(f"k={k!r}", expected="k >= 1", fix="ask for at least one result")
        queries = self.check_vectors(vectors)
        lock = self._lock
        lock.acquire_read()
        try:
            if owner is None and not tags:
                count = len(self._table)
                if count == 0:
                    return [[] for _ in range(len(queries))]
                threads = 1 if len(queries) < PARALLEL_MIN_QUERIES else -1
                labels, distances = self._index.knn_query(
                    queries, k=min(k, count), num_threads=threads
                )
            else:
                allowed = self._table.matching_labels(owner=owner, tags=tags)
                if allowed.size == 0:
                    return [[] for _ in range(len(queries))]
                labels, distances = self._filtered(queries, allowed, min(k, int(allowed.size)))
            return self._hits(labels, distances)
        finally:
            lock.release_read()

    def _single(self, vector: np.ndarray, k: int) -> list[list[Hit]] | None:
        """The hot path of one unfiltered query (no numpy work besides hnswlib's call).

        The search runs on the graph's own scoring; a NaN or infinite component makes
        every distance non-finite, so finiteness is checked on the returned distances
        (by :func:`hit_rows`). ``None`` sends the query to the general path (which
        validates and explains).
        """
        lock = self._lock
        lock.acquire_read()
        try:
            count = len(self._table)
            if count == 0:
                return None
            try:
                labels, distances = self._index.knn_query(vector, k=min(k, count), num_threads=1)
            except RuntimeError:  # hnswlib found fewer than k: let the general path decide
                return None
            doc_ids, owners = self._table.label_maps()
            return hit_rows(labels, distances, doc_ids, owners, Hit, self._score_offset, True)
        finally:
            lock.release_read()

    def _filtered(
        self, queries: np.ndarray, allowed: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if allowed.size <= EXACT_FILTER_LIMIT:
            stored = np.asarray(self._index.get_items(allowed), dtype=np.float32)
            distances = self._distances(queries, stored)
            order = np.argsort(distances, axis=1, kind="stable")[:, :k]
            return allowed[order], np.take_along_axis(distances, order, axis=1)
        allowed_set = {int(x) for x in allowed}
        return self._index.knn_query(  # type: ignore[no-any-return]
            queries, k=k, num_threads=1, filter=lambda label: label in allowed_set
        )

    def _distances(self, queries: np.ndarray, stored: np.ndarray) -> np.ndarray:
        if self.spec.metric is Metric.L2:
            squared = (queries**2).sum(axis=1)[:, None] + (stored**2).sum(axis=1)[None, :]
            return np.asarray(np.maximum(squared - 2.0 * (queries @ stored.T), 0.0))
        if self.spec.metric is Metric.COSINE:
            queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        return 1.0 - queries @ stored.T  # type: ignore[no-any-return]

    def _hits(self, labels: np.ndarray, distances: np.ndarray) -> list[list[Hit]]:
        """Hits per query row (call under the read lock), built by :func:`hit_rows`.

        A label past the table or naming a tombstone is skipped; scores are
        ``1 - distance`` for inner product and cosine (hnswlib's distance is one minus the
        similarity) and ``-distance`` for l2 (hnswlib's squared distance).
        """
        doc_ids, owners = self._table.label_maps()
        rows = hit_rows(
            np.ascontiguousarray(labels, dtype=np.uint64),
            np.ascontiguousarray(distances, dtype=np.float32),
            doc_ids,
            owners,
            Hit,
            self._score_offset,
            False,
        )
        return cast("list[list[Hit]]", rows)

    # -- serialisation ---------------------------------------------------------------------

    def serialize(self) -> tuple[list[memoryview | bytes], int, bytes, int]:
        """``(graph image chunks, graph image length, table image, element count)``.

        Call under the read lock so the graph and the table are consistent; the chunks
        are views of a private copy of the graph's state, safe to seal afterwards.
        """
        chunks, size = graph_chunks(self._index)
        return chunks, size, self._table.serialize(), len(self._table)

    @classmethod
    def from_image(
        cls, spec: CollectionSpec, graph: mmap.mmap, table: DocumentTable, *, capacity: int
    ) -> HnswCollection:
        """Load a collection from a decrypted graph image and its loaded table."""
        index = graph_from_buffer(graph)
        if index.get_max_elements() < capacity:
            index.resize_index(capacity)
        return cls(spec, index=index, table=table)

    def capacity(self) -> int:
        """How many elements the graph holds before it must resize."""
        return int(self._index.get_max_elements())
