"""The durable, encrypted-at-rest store of collections.

Each collection lives in ``<root>/collections/<name>/``::

    manifest-<gen>.sealed   spec, element count, last folded log sequence (the commit point)
    graph-<gen>.sealed      the hnswlib graph image (vectors included)
    table-<gen>.sealed      the SQLite image of ids, owners and tags
    wal/                    the encrypted write-ahead log

Every file is an AES-256-GCM envelope (:mod:`secure_index.sealing.sealed_file`) whose
associated data binds tenant, collection, kind, dimension, metric, element count and
generation, so a swapped or rolled-back file is refused. An upsert is acknowledged only
after its log record is fsync'ed; a snapshot folds the log into a new generation (keeping
the previous one) and then discards the folded log files. A crash at any point recovers
to the last snapshot plus the log. Plaintext images exist only in anonymous memory.

The store host may delete or roll back files. The log must continue the newest
generation without a gap, and with a state anchor (:mod:`secure_index.storage.state_anchor`,
kept outside the data folder and updated after each group commit, before the write is
acknowledged) the folder must hold at least the anchored generation and log position;
otherwise the collection is refused with a :class:`~secure_index.errors.RollbackError`
naming what is missing. One collection that cannot be opened (damaged, half-made, rolled
back) is reported by :meth:`IndexStore.broken` and answers
:class:`~secure_index.errors.CollectionUnavailableError` while the others are served.
Collections are created in a temporary folder and renamed into place, and share one name
space with the CKKS collections (:meth:`IndexStore.ckks_collections`).

The file names and contexts are in :mod:`secure_index.index.store_layout`, the sealed
files of a generation in :mod:`secure_index.index.snapshot_files` and recovery on open in
:mod:`secure_index.index.durable_collection`; this module holds the store itself.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from embedding_core.errors import FedembedError
from index_client.vector_space import VectorSpace
from secure_index.atomic_file import storage_error
from secure_index.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    CollectionUnavailableError,
    OwnershipError,
    StateAnchorError,
    StorageError,
)
from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.collection_space import check_upload_space, with_space
from secure_index.index.collection_spec import CollectionSpec, Hit, validate_doc_id
from secure_index.index.document_table import DocumentRow
from secure_index.index.durable_collection import (
    DurableCollection,
    build_collection,
    open_collections,
)
from secure_index.index.snapshot_files import prune_generations, write_generation
from secure_index.index.store_layout import (
    CKKS_DIR,
    COLLECTIONS_DIR,
    DIR_MODE,
    GENERATION_FILE,
    KEEP_GENERATIONS,
    KIND_HNSW,
    LOCK_FILE,
    CollectionNamespace,
)
from secure_index.index.wal_records import Operation, WalRecord
from secure_index.sealing import KekProvider, rewrap_sealed
from secure_index.storage.state_anchor import AnchoredState, StateAnchor

__all__ = ["COLLECTIONS_DIR", "LOCK_FILE", "CollectionStats", "IndexStore", "UpsertResult"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpsertResult:
    """What an acknowledged upsert did (durable when returned)."""

    seq: int
    inserted: int
    updated: int


@dataclass(frozen=True)
class CollectionStats:
    """Sizes and positions of one collection (no content)."""

    name: str
    dimension: int
    metric: str
    protection: str
    documents: int
    generation: int
    last_seq: int
    folded_seq: int
    space: str | None = None  # the encoder space of its vectors, once recorded
    encoder_backend: str | None = None
    model_fingerprint: str | None = None


class IndexStore:
    """Collections of one tenant, persisted encrypted with crash-safe writes.

    Args:
        root: The data directory (created if missing); one store process per directory.
        keks: Key-encryption keys that wrap each file's fresh data key.
        tenant: The consortium or tenant the data belongs to (bound into every file).
        snapshot_records: Fold the log into a snapshot after this many records.
        snapshot_interval_s: ... or after this many seconds with unfolded records.
        background: Run the snapshotter thread.
        state_anchor: The state anchor file, outside the data folder (``None``: no anchor,
            so a rollback of the whole folder or a cut log is not detected).
        accept_rollback: Collections whose detected loss the operator accepts: they open
            with what the folder holds and are re-anchored there.
    """

    def __init__(
        self,
        root: Path,
        *,
        keks: KekProvider,
        tenant: str,
        snapshot_records: int = 50_000,
        snapshot_interval_s: float = 60.0,
        background: bool = True,
        state_anchor: Path | None = None,
        accept_rollback: Collection[str] = (),
    ) -> None:
        self.root = Path(root)
        self._keks = keks
        self.tenant = tenant
        self._snapshot_records = snapshot_records
        self._snapshot_interval_s = snapshot_interval_s
        self._collections: dict[str, DurableCollection] = {}
        self._broken: dict[str, FedembedError] = {}
        self.namespace = CollectionNamespace(self.root)
        self._registry = self.namespace.lock
        self._closed = threading.Event()
        self._accept = frozenset(accept_rollback)
        self._ckks: CkksCollections | None = None
        self.anchor: StateAnchor | None = None
        self.last_snapshot_error: str | None = None
        if state_anchor is not None and state_anchor.resolve().is_relative_to(self.root.resolve()):
            raise StateAnchorError(
                f"the state anchor {state_anchor} is inside the index folder {self.root}",
                expected="an anchor outside the data folder (whoever rolls the folder back "
                "would roll the anchor back with it)",
                fix="set FEDEMBED_INDEX_STATE_ANCHOR (or --state-anchor) to a path beside the "
                "key file, or leave it unset to use the default there",
            )
        try:
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            (self.root / COLLECTIONS_DIR).mkdir(mode=DIR_MODE, exist_ok=True)
            self._lock_fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise storage_error(exc, path=self.root, operation="open the index directory") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StorageError(
                f"{self.root} is in use by another index process",
                expected="one index store process per data directory",
                fix="stop the other `fedembed index serve`, or use another --data-dir",
            ) from None
        try:
            if state_anchor is not None:
                self.anchor = StateAnchor.open(state_anchor, keks=keks, tenant=tenant)
                if not self.anchor.existed and any((self.root / COLLECTIONS_DIR).iterdir()):
                    logger.warning(
                        "state anchor: %s is new; anchoring what %s holds now (a rollback "
                        "before this start cannot be detected)",
                        state_anchor,
                        self.root,
                    )
            self._collections, self._broken = open_collections(
                self.root / COLLECTIONS_DIR,
                tenant=tenant,
                keks=keks,
                anchor=self.anchor,
                accept_rollback=self._accept,
            )
            for name, durable in self._collections.items():
                self.namespace.register(name, KIND_HNSW)
                if name in self._accept:  # fold what is left, so the folder is whole again
                    self._snapshot(durable)
            for name in self._broken:
                self.namespace.register(name, KIND_HNSW)
        except BaseException:
            for durable in self._collections.values():
                durable.wal.close()
            if self.anchor is not None:
                self.anchor.close()
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            raise
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._snapshotter, daemon=True, name="snapshot")
            self._thread.start()

    # -- collections -----------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec) -> CollectionStats:
        """Create and persist an empty collection (generation 1).

        The collection is written in a temporary folder and renamed into place (both
        synced), so a failed create leaves nothing behind. Its name must be free among
        every collection kind (CKKS included).

        Raises:
            CollectionExistsError: When any collection (of any kind) has the name.
            StorageError: When it cannot be written (nothing is left behind).
        """
        with self._registry:
            if spec.name in self._collections or spec.name in self._broken:
                raise CollectionExistsError(
                    f"collection {spec.name!r} already exists",
                    expected="a new name",
                    fix="use the existing collection or choose another name",
                )
            self.namespace.check_free(spec.name)
            durable = build_collection(
                self.root / COLLECTIONS_DIR, spec, tenant=self.tenant, keks=self._keks
            )
            self._collections[spec.name] = durable
            self.namespace.register(spec.name, KIND_HNSW)
            if self.anchor is not None:
                self.anchor.record(spec.name, AnchoredState(KIND_HNSW, 1, 0))
        logger.info(
            "collection: created %s (dim %d, %s, %s)",
            spec.name,
            spec.dimension,
            spec.metric,
            spec.protection,
        )
        return self.stats(spec.name)

    def _anchor_through(self, name: str, seq: int) -> None:
        """Anchor the log of ``name`` through ``seq`` before the write is acknowledged.

        Called after the commit lock is released, so the anchor's ``fdatasync`` of one
        write overlaps the log's ``fdatasync`` of the next (and concurrent writers share
        one anchor write). A failure here leaves the record durable (it replays) but
        unacknowledged.
        """
        if self.anchor is not None:
            self.anchor.advance(name, seq)

    def names(self) -> list[str]:
        """The collections of this store that are open (see :meth:`broken`)."""
        return sorted(self._collections)

    def broken(self) -> dict[str, FedembedError]:
        """The collections that could not be opened, each with its error."""
        return dict(self._broken)

    def ckks_collections(self) -> CkksCollections:
        """The store's CKKS collections (``<root>/ckks``): one name space and anchor."""
        with self._registry:
            if self._ckks is None:
                self._ckks = CkksCollections(
                    self.root / CKKS_DIR,
                    keks=self._keks,
                    tenant=self.tenant,
                    namespace=self.namespace,
                    anchor=self.anchor,
                    accept_rollback=self._accept,
                )
            return self._ckks

    def spec(self, name: str) -> CollectionSpec:
        """The fixed parameters of a collection."""
        return self._get(name).collection.spec

    def stats(self, name: str) -> CollectionStats:
        """Sizes and log positions of a collection."""
        durable = self._get(name)
        spec = durable.collection.spec
        return CollectionStats(
            name=spec.name,
            dimension=spec.dimension,
            metric=str(spec.metric),
            protection=str(spec.protection),
            documents=len(durable.collection),
            generation=durable.generation,
            last_seq=durable.wal.last_seq,
            folded_seq=durable.folded_seq,
            space=spec.space,
            encoder_backend=spec.encoder_backend,
            model_fingerprint=spec.model_fingerprint,
        )

    def _get(self, name: str) -> DurableCollection:
        try:
            return self._collections[name]
        except KeyError:
            if name in self._broken:
                raise CollectionUnavailableError(name, self._broken[name]) from None
            raise CollectionNotFoundError(
                f"collection {name!r} does not exist",
                expected=f"one of {self.names()}",
                fix="create it first (`fedembed index collection create`) or fix the name",
            ) from None

    # -- writes ----------------------------------------------------------------------------

    def upsert(
        self,
        name: str,
        doc_ids: Sequence[str],
        vectors: object,
        *,
        owner: str,
        tags: Sequence[Sequence[str]] | None = None,
        space: VectorSpace | None = None,
    ) -> UpsertResult:
        """Insert or replace documents of ``owner``; durable when it returns.

        ``space`` is the encoder space of the vectors (None: a client that names none,
        the torch space); vectors of another space than the collection's are refused
        with :class:`~secure_index.errors.VectorSpaceError`, and the first upload that
        names a space records it for the collection (:mod:`.collection_space`).
        """
        durable = self._get(name)
        coll = durable.collection
        ids, array, tag_lists = coll.validate_batch(doc_ids, vectors, tags)
        if not ids:
            return UpsertResult(seq=durable.wal.last_seq, inserted=0, updated=0)
        record = WalRecord(Operation.UPSERT, tuple(ids), owner, tag_lists, array)
        with durable.commit:
            recorded = check_upload_space(coll.spec, space, populated=len(coll) > 0)
            if recorded is not None:  # logged with the vectors: replayed after a crash
                record = dataclasses.replace(record, space=recorded)
            foreign = coll.foreign_ids(ids, owner=owner)
            if foreign:
                raise OwnershipError(
                    f"{len(foreign)} document id(s) belong to another node, e.g. {foreign[0]!r}",
                    expected="ids owned by the uploading node",
                    fix="use ids unique to your node (e.g. prefix them with your node id)",
                )
            seq = durable.wal.append([record.encode()])
            inserted = coll.add_items(ids, array, owner=owner, tags=tag_lists)
            if recorded is not None:
                coll.spec = with_space(coll.spec, recorded)
                logger.info("collection: %s records %s", name, recorded.describe())
        self._anchor_through(name, seq)
        return UpsertResult(seq=seq, inserted=inserted, updated=len(ids) - inserted)

    def delete(self, name: str, doc_ids: Sequence[str], *, owner: str) -> int:
        """Delete documents of ``owner``; durable when it returns; returns how many."""
        durable = self._get(name)
        ids = [validate_doc_id(d) for d in doc_ids]
        with durable.commit:
            foreign = durable.collection.foreign_ids(ids, owner=owner)
            if foreign:
                raise OwnershipError(
                    f"{len(foreign)} document id(s) belong to another node, e.g. {foreign[0]!r}",
                    expected="ids owned by the requesting node",
                    fix="delete only your own documents",
                )
            seq = durable.wal.append([WalRecord(Operation.DELETE, tuple(ids), owner).encode()])
            deleted = durable.collection.delete(ids)
        self._anchor_through(name, seq)
        return deleted

    # -- queries ---------------------------------------------------------------------------

    def knn_query(
        self,
        name: str,
        vectors: object,
        k: int,
        *,
        owner: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[list[Hit]]:
        """The ``k`` nearest documents per query vector (ids, owners, scores)."""
        return self._get(name).collection.knn_query(vectors, k, owner=owner, tags=tags)

    def lookup(self, name: str, doc_ids: Sequence[str]) -> list[DocumentRow]:
        """Metadata rows (label, id, owner, tags) of the given documents, if present."""
        return self._get(name).collection.rows(doc_ids)

    # -- snapshots -------------------------------------------------------------------------

    def snapshot(self, name: str) -> int:
        """Fold the log of ``name`` into a new generation now; returns the generation."""
        return self._snapshot(self._get(name))

    def _snapshot(self, durable: DurableCollection) -> int:
        with durable.snapshot_lock:
            coll = durable.collection
            spec = coll.spec
            with durable.commit, coll.lock.read():
                chunks, _size, table, count = coll.serialize()
                capacity = coll.capacity()
                last_seq = durable.wal.roll()
            generation = durable.generation + 1
            started = time.perf_counter()
            try:
                size = write_generation(
                    durable.directory,
                    spec,
                    generation,
                    chunks=chunks,
                    table=table,
                    count=count,
                    capacity=capacity,
                    folded_seq=last_seq,
                    tenant=self.tenant,
                    keks=self._keks,
                )
            except StorageError as exc:
                self.last_snapshot_error = exc.problem
                logger.error(
                    "snapshot: %s generation %d failed: %s", spec.name, generation, exc.problem
                )
                raise
            finally:
                chunks.clear()
            durable.generation, durable.folded_seq = generation, last_seq
            if self.anchor is not None:
                self.anchor.record(spec.name, AnchoredState(KIND_HNSW, generation, last_seq))
            self.last_snapshot_error = None
            prune_generations(durable.directory, keep_from=generation - KEEP_GENERATIONS + 1)
            removed = durable.wal.discard_through(last_seq)
            logger.info(
                "snapshot: %s generation %d, %d documents, %.1f MiB, %.2f s, %d log file(s) folded",
                spec.name,
                generation,
                count,
                size / 2**20,
                time.perf_counter() - started,
                removed,
            )
            return generation

    def _snapshotter(self) -> None:
        last_fold: dict[str, float] = {}
        while not self._closed.wait(1.0):
            for name, durable in list(self._collections.items()):
                pending = durable.wal.last_seq - durable.folded_seq
                age = time.monotonic() - last_fold.setdefault(name, time.monotonic())
                if pending >= self._snapshot_records or (
                    pending and age >= self._snapshot_interval_s
                ):
                    try:
                        self._snapshot(durable)
                        last_fold[name] = time.monotonic()
                    except StorageError:
                        last_fold[name] = time.monotonic()  # retry after the interval
                    except Exception:  # the snapshotter must outlive one bad fold
                        logger.exception("snapshot: %s failed unexpectedly", name)

    # -- keys ------------------------------------------------------------------------------

    def rewrap(self) -> int:
        """Re-wrap every snapshot file (and the anchor) under the primary KEK; roll the logs.

        Data is not re-encrypted: only each file's data key is wrapped anew. Old log
        files are folded by a snapshot, so afterwards no file needs an older KEK.
        """
        changed = int(self.anchor.rewrap()) if self.anchor is not None else 0
        for durable in list(self._collections.values()):
            self._snapshot(durable)
            for path in sorted(durable.directory.iterdir()):
                if GENERATION_FILE.match(path.name):
                    changed += int(rewrap_sealed(path, keks=self._keks))
        logger.info("keys: re-wrapped %d file(s) under %s", changed, self._keks.primary_id)
        return changed

    # -- closing ---------------------------------------------------------------------------

    def close(self, *, snapshot: bool = True) -> None:
        """Stop the snapshotter, fold pending logs (if asked) and release the directory."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
        for durable in self._collections.values():
            if snapshot and durable.wal.last_seq > durable.folded_seq:
                try:
                    self._snapshot(durable)
                except StorageError:
                    logger.warning(
                        "close: %s keeps its log (snapshot failed)", durable.collection.spec.name
                    )
            durable.wal.close()
        if self.anchor is not None:
            self.anchor.close()
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
