"""One persisted collection at run time, and its recovery when the store opens.

A :class:`DurableCollection` ties the in-memory collection to its write-ahead log, its
current snapshot generation and the locks that order log appends with in-memory applies.
:func:`recover_collection` rebuilds one from disk: the newest generation's sealed files,
then every log record after the sequence folded into that generation, so a crash at any
point recovers to the last snapshot plus the log.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from secure_index.index.hnsw_collection import HnswCollection
from secure_index.index.snapshot_files import latest_generation, read_generation
from secure_index.index.store_layout import WAL_DIR, wal_context
from secure_index.index.wal_records import Operation, WalRecord
from secure_index.sealing import KekProvider
from secure_index.storage import WriteAheadLog

__all__ = ["DurableCollection", "recover_collection"]

logger = logging.getLogger(__name__)


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


def recover_collection(directory: Path, *, tenant: str, keks: KekProvider) -> DurableCollection:
    """Load the newest generation in ``directory`` and replay its log onto it.

    Raises:
        CollectionError: When the directory has no manifest.
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
    replayed = 0
    for _seq, data in wal.replay(after_seq=folded):
        record = WalRecord.decode(data)
        if record.op is Operation.UPSERT:
            collection.add_items(
                record.doc_ids, record.vectors, owner=record.owner, tags=record.tags
            )
        else:
            collection.delete(record.doc_ids)
        replayed += 1
    logger.info(
        "open: %s generation %d, %d documents, %d log record(s) replayed, %.2f s",
        name,
        generation,
        len(collection),
        replayed,
        time.perf_counter() - started,
    )
    return DurableCollection(directory, collection, wal, generation=generation, folded_seq=folded)
