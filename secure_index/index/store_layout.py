"""Where the store keeps its files, and the sealed contexts that bind each file.

A store directory holds ``.lock`` (one store process per directory), ``ckks/<name>/``
per CKKS collection and ``collections/<name>/`` per HNSW collection, with
``manifest-<gen>.sealed``, ``graph-<gen>.sealed``, ``table-<gen>.sealed`` and the
write-ahead log in ``wal/``. Folders are private (0700), built in a temporary folder and
renamed into place, and every new entry or removal is made durable by syncing its parent.
Every file is bound by its :class:`~secure_index.sealing.SealedContext` to the tenant,
collection, kind and (for snapshot files) dimension, metric, element count and
generation, so a swapped or rolled-back file is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from secure_index.atomic_file import fsync_directory, storage_error
from secure_index.errors import CollectionExistsError
from secure_index.index.collection_spec import CollectionSpec
from secure_index.sealing import SealedContext

logger = logging.getLogger(__name__)

__all__ = [
    "CKKS_DIR",
    "COLLECTIONS_DIR",
    "DIR_MODE",
    "GENERATION_FILE",
    "KEEP_GENERATIONS",
    "KIND_CKKS",
    "KIND_GRAPH",
    "KIND_HNSW",
    "KIND_MANIFEST",
    "KIND_TABLE",
    "KIND_WAL",
    "LOCK_FILE",
    "WAL_DIR",
    "CollectionNamespace",
    "commit_directory",
    "generation_file_name",
    "make_directory",
    "manifest_context",
    "remove_temporary_directories",
    "snapshot_contexts",
    "temporary_directory",
    "wal_context",
]

COLLECTIONS_DIR = "collections"
CKKS_DIR = "ckks"  # the CKKS collections, beside ``collections/`` in the store folder
DIR_MODE = 0o700
KIND_HNSW, KIND_CKKS = "hnsw", "ckks"  # the collection kinds that share one name space
TEMP_PREFIX = ".new-"
_KIND_WORDS = {KIND_HNSW: "an at-rest or DCPE collection", KIND_CKKS: "a CKKS collection"}
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


class CollectionNamespace:
    """One name space for every collection kind of a store folder (HNSW and CKKS).

    A name is taken when either kind holds it in memory or on disk, so a CKKS collection
    can never hide an at-rest or DCPE collection of the same name (or the reverse), in
    one process or across restarts. Creates hold :attr:`lock` from check to commit.

    Args:
        store_root: The store folder (``collections/`` and ``ckks/`` inside), or ``None``
            for a CKKS folder used on its own.
    """

    def __init__(self, store_root: Path | None) -> None:
        self.root = store_root
        self.lock = threading.RLock()
        self._kinds: dict[str, str] = {}

    def register(self, name: str, kind: str) -> None:
        """Note that ``kind`` holds ``name`` (at open and after a create)."""
        with self.lock:
            self._kinds.setdefault(name, kind)

    def check_free(self, name: str) -> None:
        """Refuse a name any collection kind already holds.

        Raises:
            CollectionExistsError: When the name is taken (the answer is a 409).
        """
        with self.lock:
            holder = self._kinds.get(name)
            if holder is None and self.root is not None:
                if (self.root / COLLECTIONS_DIR / name).exists():
                    holder = KIND_HNSW
                elif (self.root / CKKS_DIR / name).exists():
                    holder = KIND_CKKS
        if holder is not None:
            raise CollectionExistsError(
                f"collection name {name!r} is taken by {_KIND_WORDS.get(holder, holder)}",
                expected="a name no collection of any kind (at-rest, DCPE, CKKS) uses",
                fix="use the existing collection or choose another name",
            )


def make_directory(path: Path) -> None:
    """Create ``path`` (mode 0700) and make its entry durable (fsync of the parent).

    Raises:
        StorageError: When it cannot be created.
    """
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        return
    except OSError as exc:
        raise storage_error(exc, path=path, operation="create the folder") from exc
    fsync_directory(path.parent)


def temporary_directory(parent: Path, name: str) -> Path:
    """A new, private folder in ``parent`` where a collection is built before it exists."""
    path = parent / f"{TEMP_PREFIX}{name}.{secrets.token_hex(4)}"
    try:
        path.mkdir(mode=DIR_MODE)
    except OSError as exc:
        raise storage_error(exc, path=path, operation="create the folder") from exc
    return path


def commit_directory(temp: Path, final: Path) -> None:
    """Rename a fully written folder into place, durably (a failed create leaves nothing).

    Raises:
        StorageError: When the folder cannot be synced or renamed (it is then removed).
    """
    try:
        fsync_directory(temp)
        os.rename(temp, final)
    except OSError as exc:
        shutil.rmtree(temp, ignore_errors=True)
        raise storage_error(exc, path=final, operation="create the collection") from exc
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    fsync_directory(final.parent)


def remove_temporary_directories(parent: Path) -> None:
    """Remove what interrupted creates left in ``parent`` (best effort)."""
    removed = False
    for path in parent.iterdir():
        if path.name.startswith(TEMP_PREFIX) and path.is_dir():
            logger.warning("open: removing %s, left by an interrupted create", path.name)
            shutil.rmtree(path, ignore_errors=True)
            removed = True
    if removed:
        with contextlib.suppress(Exception):
            fsync_directory(parent)
