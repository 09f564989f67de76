"""The vector index: hnswlib collections behind a reader-writer lock, and the store."""

from secure_index.index.ckks_collections import CkksCollections
from secure_index.index.document_table import DocumentRow, DocumentTable
from secure_index.index.hnsw_collection import (
    CollectionSpec,
    Hit,
    HnswCollection,
    Metric,
    Protection,
)
from secure_index.index.index_store import CollectionStats, IndexStore, UpsertResult
from secure_index.index.rwlock import ReaderWriterLock
from secure_index.index.store_layout import CollectionNamespace

__all__ = [
    "CkksCollections",
    "CollectionNamespace",
    "CollectionSpec",
    "CollectionStats",
    "DocumentRow",
    "DocumentTable",
    "Hit",
    "HnswCollection",
    "IndexStore",
    "Metric",
    "Protection",
    "ReaderWriterLock",
    "UpsertResult",
]
