"""The sealed files of one snapshot generation: writing, finding, reading and pruning them.

A generation is a graph image, a table image and a manifest (spec, element count,
capacity, the last folded log sequence and the generation itself). The manifest is
written last and is the commit point: a generation without one does not exist. The graph
image is decrypted into anonymous memory only, never into a plaintext file.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

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
from secure_index.sealing import KekProvider, open_sealed, write_sealed

__all__ = ["latest_generation", "prune_generations", "read_generation", "write_generation"]

logger = logging.getLogger(__name__)


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
    with open_sealed(graph_path, expected=ctx(KIND_GRAPH), keks=keks) as reader:
        with open_sealed(table_path, expected=ctx(KIND_TABLE), keks=keks) as table_reader:
            table = DocumentTable(table_reader.read())
        image = anonymous_buffer(reader.plaintext_length)
        view = memoryview(image)[: reader.plaintext_length]
        try:
            reader.read_into(view)
            view.release()
            collection = HnswCollection.from_image(
                spec, image, table, capacity=int(manifest["capacity"])
            )
        finally:
            view.release()
            with contextlib.suppress(BufferError):  # a failed read's traceback holds views
                image.close()
    return collection, int(manifest["folded_seq"])


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
