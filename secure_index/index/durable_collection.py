"""One persisted collection at run time, and its recovery when the store opens.

A :class:`DurableCollection` ties the in-memory collection to its write-ahead log, its
current snapshot generation and the locks that order log appends with in-memory applies.
:func:`recover_collection` rebuilds one from disk: the newest generation's sealed files,
then every log record after the sequence folded into that generation, so a crash at any
point recovers to the last snapshot plus the log. A log that does not continue the
generation (a deleted newest manifest) or a folder behind the state anchor (a deleted or
cut log, an older copy of the folder) is a :class:`~secure_index.errors.RollbackError`
naming what is missing.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Collection
from pathlib import Path

from embedding_core.errors import FedembedError
from embedding_core.progress import track
from secure_index.errors import RollbackError
from secure_index.index.collection_space import with_space
from secure_index.index.collection_spec import CollectionSpec
from secure_index.index.hnsw_collection import HnswCollection
from secure_index.index.snapshot_files import latest_generation, read_generation, write_generation
from secure_index.index.store_layout import (
    KIND_HNSW,
    WAL_DIR,
    commit_directory,
    remove_temporary_directories,
    temporary_directory,
    wal_context,
)
from secure_index.index.wal_records import Operation, WalRecord
from secure_index.sealing import KekProvider
from secure_index.storage import WriteAheadLog
from secure_index.storage.state_anchor import AnchoredState, StateAnchor

__all__ = ["DurableCollection", "build_collection", "open_collections", "recover_collection"]

logger = logging.getLogger(__name__)

REPLAY_PROGRESS_MIN = 100
"""Replaying at least this many log records at open shows progress."""


class DurableCollection:
    """One collection with its log, generation and commit lock."""

    def __init__(
        self,
        directory: Path,
        collection: HnswCollection,
        wal: WriteAheadLog,
        generation: int,
        folded_seq: int,
    ) -> None:
        self.directory = directory
        self.collection = collection
        self.wal = wal
        self.generation = generation
        self.folded_seq = folded_seq
        self.commit = threading.Lock()  # orders log appends with in-memory applies
        self.snapshot_lock = threading.Lock()


def recover_collection(
    directory: Path,
    *,
    tenant: str,
    keks: KekProvider,
    anchored: AnchoredState | None = None,
    accept_rollback: bool = False,
) -> DurableCollection:
    """Load the newest generation in ``directory`` and replay its log onto it.

    The log must continue the generation without a gap (its first record follows the
    folded sequence), and when the store has a state anchor the folder must hold at
    least the anchored generation and log position; otherwise acknowledged data is
    missing. With ``accept_rollback`` such a loss is logged and the collection opens with
    what is left (the caller re-anchors it).

    Raises:
        CollectionError: When the directory has no manifest.
        RollbackError: When a generation or log records that were committed are missing.
        IntegrityError: When a snapshot file or the log is damaged, swapped or rolled back.
        KeyManagementError: When a file's KEK id is unknown or retired.
        StorageError: When a file cannot be read or the log cannot be repaired.
    """
    name = directory.name
    generation = latest_generation(directory)
    started = time.perf_counter()
    collection, folded = read_generation(directory, generation, tenant=tenant, keks=keks)
    spec = collection.spec
    wal = WriteAheadLog.open(
        directory / WAL_DIR,
        context=wal_context(tenant, spec),
        keks=keks,
        min_next_seq=folded + 1,
    )
    try:
        _check_complete(name, generation, folded, wal, anchored, accept_rollback)
        replayed = 0
        records = wal.replay(after_seq=folded)
        if wal.last_seq - folded >= REPLAY_PROGRESS_MIN:  # a long replay shows progress
            what = f"replay {name} log"
            records = track(records, total=wal.last_seq - folded, what=what, unit="records")
        for _seq, data in records:
            record = WalRecord.decode(data)
            if record.op is Operation.UPSERT:
                if record.space is not None and collection.spec.vector_space is None:
                    collection.spec = with_space(collection.spec, record.space)
                collection.add_items(
                    record.doc_ids, record.vectors, owner=record.owner, tags=record.tags
                )
            else:
                collection.delete(record.doc_ids)
            replayed += 1
    except BaseException:
        wal.close()
        raise
    logger.info(
        "open: %s generation %d, %d documents, %d log record(s) replayed, %.2f s",
        name,
        generation,
        len(collection),
        replayed,
        time.perf_counter() - started,
    )
    return DurableCollection(directory, collection, wal, generation=generation, folded_seq=folded)


def _check_complete(
    name: str,
    generation: int,
    folded: int,
    wal: WriteAheadLog,
    anchored: AnchoredState | None,
    accept: bool,
) -> None:
    """Refuse a log that does not continue the generation, or a folder behind the anchor."""
    found = f"the folder holds generation {generation} and log records through {wal.last_seq}"
    lost: list[str] = []
    if wal.first_seq > folded + 1:
        lost.append(f"log records {folded + 1}-{wal.first_seq - 1}")
    if anchored is not None:
        if anchored.generation > generation:
            lost.insert(0, f"snapshot generation {anchored.generation}")
        if anchored.seq > wal.last_seq:
            lost.append(f"log records {wal.last_seq + 1}-{anchored.seq}")
    if not lost:
        return
    error = RollbackError(name, lost=" and ".join(lost), found=found)
    if not accept:
        raise error
    logger.warning("open: %s: accepted by the operator: %s", name, error.problem)


def open_collections(
    folder: Path,
    *,
    tenant: str,
    keks: KekProvider,
    anchor: StateAnchor | None,
    accept_rollback: Collection[str] = (),
) -> tuple[dict[str, DurableCollection], dict[str, FedembedError]]:
    """Open every collection in ``folder``; a broken one is reported, never fatal.

    Returns:
        The open collections, and the error of each one that could not be opened
        (damaged, half-made or rolled back, or anchored but missing).
    """
    remove_temporary_directories(folder)
    opened: dict[str, DurableCollection] = {}
    broken: dict[str, FedembedError] = {}
    for directory in sorted(p for p in folder.iterdir() if p.is_dir()):
        name = directory.name
        anchored = anchor.get(name) if anchor is not None else None
        try:
            durable = recover_collection(
                directory,
                tenant=tenant,
                keks=keks,
                anchored=anchored if anchored and anchored.kind == KIND_HNSW else None,
                accept_rollback=name in accept_rollback,
            )
        except FedembedError as exc:
            logger.error("open: collection %s is unavailable: %s", name, exc.problem)
            broken[name] = exc
            continue
        opened[name] = durable
        if anchor is not None:
            now = AnchoredState(KIND_HNSW, durable.generation, durable.wal.last_seq)
            anchor.record(name, now, force=name in accept_rollback)
    if anchor is not None:
        for name in anchor.names():
            state = anchor.get(name)
            if state is None or state.kind != KIND_HNSW or name in opened or name in broken:
                continue
            if name in accept_rollback:
                logger.warning("open: %s: the operator accepted its loss", name)
                anchor.forget(name)
                continue
            lost = f"the whole collection (generation {state.generation}, log through {state.seq})"
            broken[name] = RollbackError(name, lost=lost, found="its folder is missing")
            logger.error("open: collection %s is unavailable: %s", name, broken[name].problem)
    return opened, broken


def build_collection(
    parent: Path, spec: CollectionSpec, *, tenant: str, keks: KekProvider
) -> DurableCollection:
    """Create collection ``spec`` in ``parent``: all or nothing.

    Generation 1 and an empty log are written in a temporary folder, which is synced and
    renamed into place (and the parent synced), so a failed create leaves nothing.

    Raises:
        StorageError: When a file cannot be written (nothing is left behind).
        KeyManagementError: When the KEK provider fails (nothing is left behind).
    """
    temp = temporary_directory(parent, spec.name)
    collection = HnswCollection(spec)
    context = wal_context(tenant, spec)
    try:
        chunks, _size, table, count = collection.serialize()
        write_generation(
            temp,
            spec,
            1,
            chunks=chunks,
            table=table,
            count=count,
            capacity=collection.capacity(),
            folded_seq=0,
            tenant=tenant,
            keks=keks,
        )
        WriteAheadLog.open(temp / WAL_DIR, context=context, keks=keks).close()
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    final = parent / spec.name
    commit_directory(temp, final)
    wal = WriteAheadLog.open(final / WAL_DIR, context=context, keks=keks)
    return DurableCollection(final, collection, wal, generation=1, folded_seq=0)
