"""The sealed files of one snapshot generation: writing, finding, reading and pruning them.

A generation is a graph image, a table image and a manifest (spec, element count,
capacity, the last folded log sequence and the generation itself). The manifest is
written last and is the commit point: a generation without one does not exist. The graph
image is decrypted into anonymous memory only, never into a plaintext file. On open the
graph decrypts on its own threads while the table decrypts and parses beside it, and a
large open shows progress (:mod:`embedding_core.progress`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from embedding_core.progress import Progress
from secure_index.atomic_file import fsync_directory
from secure_index.errors import CollectionError, StorageError
from secure_index.index.collection_spec import CollectionSpec, Metric, Protection
from secure_index.index.document_table import DocumentTable
from secure_index.index.graph_image import anonymous_buffer
from secure_index.index.hnsw_collection import HnswCollection
from secure_index.index.store_layout import (
    GENERATION_FILE,
    KIND_GRAPH,
    KIND_MANIFEST,
    KIND_TABLE,
    generation_file_name,
    manifest_context,
    snapshot_contexts,
)
from secure_index.sealing import KekProvider, SealedReader, open_sealed, write_sealed

__all__ = ["latest_generation", "prune_generations", "read_generation", "write_generation"]

logger = logging.getLogger(__name__)

LARGE_OPEN_BYTES = 64 << 20
"""Opening a generation at least this large (graph and table) shows progress."""


def write_generation(
    directory: Path,
    spec: CollectionSpec,
    generation: int,
    *,
    chunks: Sequence[memoryview | bytes],
    table: bytes,
    count: int,
    capacity: int,
    folded_seq: int,
    tenant: str,
    keks: KekProvider,
) -> int:
    """Seal the graph, the table and then the manifest of ``generation``.

    Returns:
        The bytes written for the graph and the table.

    Raises:
        StorageError: When a file cannot be written (the generation is then not committed).
    """
    ctx = snapshot_contexts(tenant, spec, count=count, generation=generation)
    size = write_sealed(
        directory / generation_file_name(KIND_GRAPH, generation),
        chunks,
        context=ctx(KIND_GRAPH),
        keks=keks,
    )
    size += write_sealed(
        directory / generation_file_name(KIND_TABLE, generation),
        table,
        context=ctx(KIND_TABLE),
        keks=keks,
    )
    manifest = {
        "spec": {
            k: str(v) if isinstance(v, (Metric, Protection)) else v for k, v in asdict(spec).items()
        },
        "documents": count,
        "capacity": capacity,
        "folded_seq": folded_seq,
        "generation": generation,
    }
    write_sealed(
        directory / generation_file_name(KIND_MANIFEST, generation),
        json.dumps(manifest, sort_keys=True).encode(),
        context=manifest_context(tenant, spec.name, generation),
        keks=keks,
    )
    return size


def latest_generation(directory: Path) -> int:
    """The newest generation of the collection in ``directory`` that has a manifest.

    Raises:
        CollectionError: When the directory has no manifest at all.
    """
    generations = sorted(
        {
            int(m.group(2))
            for p in directory.iterdir()
            if (m := GENERATION_FILE.match(p.name)) and m.group(1) == KIND_MANIFEST
        }
    )
    if not generations:
        raise CollectionError(
            f"{directory} has no manifest",
            expected="manifest-<generation>.sealed written by the index",
            fix="restore the collection folder from a backup, or remove it to drop it",
        )
    return generations[-1]


def read_generation(
    directory: Path, generation: int, *, tenant: str, keks: KekProvider
) -> tuple[HnswCollection, int]:
    """Load ``generation`` of the collection in ``directory``.

    Returns:
        The collection and the last log sequence folded into it.

    Raises:
        IntegrityError: When a file is damaged, swapped or from another generation.
    """
    name = directory.name
    manifest_path = directory / generation_file_name(KIND_MANIFEST, generation)
    with open_sealed(
        manifest_path,
        expected=manifest_context(tenant, name, generation),
        keks=keks,
        check_element_count=False,
    ) as reader:
        manifest = json.loads(reader.read())
    raw = manifest["spec"]
    spec = CollectionSpec(
        **{**raw, "metric": Metric(raw["metric"]), "protection": Protection(raw["protection"])}
    )
    count = int(manifest["documents"])
    ctx = snapshot_contexts(tenant, spec, count=count, generation=generation)
    table_path = directory / generation_file_name(KIND_TABLE, generation)
    graph_path = directory / generation_file_name(KIND_GRAPH, generation)
    for path in (graph_path, table_path):
        _prefetch(path)
    with (
        open_sealed(graph_path, expected=ctx(KIND_GRAPH), keks=keks) as reader,
        open_sealed(table_path, expected=ctx(KIND_TABLE), keks=keks) as table_reader,
    ):
        table_mib, graph_mib = table_reader.plaintext_length >> 20, reader.plaintext_length >> 20
        large = reader.plaintext_length + table_reader.plaintext_length >= LARGE_OPEN_BYTES
        with Progress(
            table_mib + graph_mib,
            what=f"open {name} index",
            unit="MiB",
            mode=None if large else "off",
        ) as progress:
            collection = _load(reader, table_reader, spec, int(manifest["capacity"]), progress)
    return collection, int(manifest["folded_seq"])


def _prefetch(path: Path) -> None:
    """Have the kernel start reading ``path`` into the page cache now, in large reads.

    A cold open then decrypts from memory the kernel filled ahead of the decrypting
    threads (their 1 MiB reads alone leave the disk idle between requests). Advice only:
    any failure is left to :func:`~secure_index.sealing.open_sealed` to report.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except (OSError, AttributeError):
        pass
    finally:
        os.close(fd)


def _load(
    reader: SealedReader,
    table_reader: SealedReader,
    spec: CollectionSpec,
    capacity: int,
    progress: Progress,
) -> HnswCollection:
    """Decrypt the graph and the table into anonymous memory and load the collection.

    The graph decrypts on a helper thread (and its pool) while this thread decrypts and
    parses the table, whose parsing holds the GIL that the decryption mostly does not
    need; hnswlib then rebuilds the graph from the image. The image is unmapped before
    this returns, also when a file fails to authenticate.
    """
    image = anonymous_buffer(reader.plaintext_length)
    view = memoryview(image)[: reader.plaintext_length]
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="open-graph") as pool:
            decrypting = pool.submit(reader.read_into, view)
            try:
                table = DocumentTable(_decrypted(table_reader))
                progress.advance(table_reader.plaintext_length >> 20)
            finally:
                error = decrypting.exception()  # waits: the thread writes into the image
            if error is not None:
                raise error
        graph_mib = reader.plaintext_length >> 20
        progress.advance(graph_mib // 2)  # decrypted; loading is the other half of the work
        view.release()
        collection = HnswCollection.from_image(spec, image, table, capacity=capacity)
        progress.advance(graph_mib - graph_mib // 2)
        return collection
    finally:
        view.release()
        with contextlib.suppress(BufferError):  # a failed read's traceback holds views
            image.close()


def _decrypted(reader: SealedReader) -> memoryview:
    """The whole plaintext of ``reader`` in anonymous memory (huge pages where possible).

    Decrypted on the calling thread (see :func:`_load`). The returned view keeps the
    memory alive; it is unmapped when the last view goes.
    """
    image = anonymous_buffer(reader.plaintext_length)
    view = memoryview(image)[: reader.plaintext_length]
    try:
        reader.read_into(view, threads=1)
    except BaseException:
        view.release()
        with contextlib.suppress(BufferError):
            image.close()
        raise
    return view


def prune_generations(directory: Path, *, keep_from: int) -> None:
    """Remove the snapshot files of generations before ``keep_from`` (best effort, synced)."""
    removed = 0
    for path in directory.iterdir():
        match = GENERATION_FILE.match(path.name)
        if match and int(match.group(2)) < keep_from:
            try:
                path.unlink()
                removed += 1
            except OSError as exc:
                logger.warning("snapshot: could not remove old %s: %s", path.name, exc.strerror)
    if removed:
        try:
            fsync_directory(directory)
        except StorageError as exc:
            logger.warning("snapshot: %s", exc.problem)
