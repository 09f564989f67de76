"""Where the store keeps its files, and the sealed contexts that bind each file.

A store directory holds ``.lock`` (one store process per directory) and
``collections/<name>/`` per collection, with ``manifest-<gen>.sealed``,
``graph-<gen>.sealed``, ``table-<gen>.sealed`` and the write-ahead log in ``wal/``.
Every file is bound by its :class:`~secure_index.sealing.SealedContext` to the tenant,
collection, kind and (for snapshot files) dimension, metric, element count and
generation, so a swapped or rolled-back file is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from secure_index.index.collection_spec import CollectionSpec
from secure_index.sealing import SealedContext

__all__ = [
    "COLLECTIONS_DIR",
    "GENERATION_FILE",
    "KEEP_GENERATIONS",
    "KIND_GRAPH",
    "KIND_MANIFEST",
    "KIND_TABLE",
    "KIND_WAL",
    "LOCK_FILE",
    "WAL_DIR",
    "generation_file_name",
    "manifest_context",
    "snapshot_contexts",
    "wal_context",
]

COLLECTIONS_DIR = "collections"
WAL_DIR = "wal"
LOCK_FILE = ".lock"
KIND_MANIFEST, KIND_GRAPH, KIND_TABLE, KIND_WAL = "manifest", "graph", "table", "wal"
GENERATION_FILE = re.compile(r"^(manifest|graph|table)-(\d{12})\.sealed$")
KEEP_GENERATIONS = 2


def generation_file_name(kind: str, generation: int) -> str:
    """The name of the ``kind`` file (manifest, graph, table) of ``generation``."""
    return f"{kind}-{generation:012d}.sealed"


def snapshot_contexts(
    tenant: str, spec: CollectionSpec, *, count: int, generation: int
) -> Callable[[str], SealedContext]:
    """The context maker for the graph and table files of one generation (by kind)."""

    def make(kind: str) -> SealedContext:
        return SealedContext(
            tenant=tenant,
            collection=spec.name,
            kind=kind,
            dimension=spec.dimension,
            metric=str(spec.metric),
            element_count=count,
            generation=generation,
        )

    return make


def manifest_context(tenant: str, name: str, generation: int) -> SealedContext:
    """The context of the manifest of ``generation`` of collection ``name``."""
    return SealedContext(tenant=tenant, collection=name, kind=KIND_MANIFEST, generation=generation)


def wal_context(tenant: str, spec: CollectionSpec) -> SealedContext:
    """The context of every write-ahead log file of a collection."""
    return SealedContext(
        tenant=tenant,
        collection=spec.name,
        kind=KIND_WAL,
        dimension=spec.dimension,
        metric=str(spec.metric),
    )
