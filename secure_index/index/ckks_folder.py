"""Opening one CKKS collection folder, checked against its manifest and the state anchor.

A folder (``<root>/<collection>/``) holds ``evaluation.sealed`` (the gateway's evaluation
keys), ``manifest.sealed`` (:mod:`secure_index.index.ckks_manifest`) and ``blocks/``.
Opening it checks, in order: the evaluation context; the manifest against the state
anchor (:mod:`secure_index.storage.state_anchor`: an older generation, or another
manifest of the same generation, is a rollback); every listed block against its entry
(missing: a :class:`~secure_index.errors.RollbackError`; another version or another
block: an ``IntegrityError``); and removes the block files no manifest lists (a crash
between a block and its manifest, or a file someone added: never served). A folder from
before manifests existed (no manifest, only unversioned block names, unknown to the
anchor) gets its first manifest from the blocks it holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from crypto.ckks_search import EncryptedBlock
from secure_index.errors import CollectionError, IntegrityError, RollbackError
from secure_index.index.ckks_manifest import (
    MANIFEST_FILE,
    BlockEntry,
    CkksManifest,
    read_manifest,
    sealed_digest,
    write_manifest,
)
from secure_index.index.store_layout import KIND_CKKS
from secure_index.sealing.key_encryption_keys import KekProvider
from secure_index.sealing.sealed_file import SealedContext, open_sealed, read_sealed_header
from secure_index.storage.state_anchor import AnchoredState, StateAnchor

__all__ = [
    "BLOCKS_DIR",
    "EVALUATION_FILE",
    "KIND_BLOCK",
    "KIND_EVALUATION",
    "METRIC",
    "CkksFolders",
    "OpenedFolder",
    "block_payload",
]

logger = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.sealed"
BLOCKS_DIR = "blocks"
KIND_EVALUATION = "ckks-evaluation"
KIND_BLOCK = "ckks-block"
METRIC = "ip"
_HEADER_LENGTH = struct.Struct("<I")

BlockKey = tuple[str, int]


@dataclass
class OpenedFolder:
    """What an opened folder holds (checked): its keys, manifest and blocks."""

    dimension: int
    evaluation: bytes
    manifest: CkksManifest
    blocks: list[tuple[BlockKey, tuple[str, ...], EncryptedBlock]] = field(default_factory=list)
    lost_blocks: bool = False  # an accepted loss: the caller commits what is left


def block_payload(owner: str, number: int, ids: tuple[str, ...], block: bytes) -> list[bytes]:
    """The plaintext of a block file: a length-prefixed JSON header, then the block."""
    header = json.dumps({"owner": owner, "block": number, "ids": list(ids)}).encode()
    return [_HEADER_LENGTH.pack(len(header)), header, block]


def _parse_payload(payload: memoryview) -> tuple[BlockKey, tuple[str, ...], memoryview]:
    (length,) = _HEADER_LENGTH.unpack_from(payload, 0)
    header = json.loads(bytes(payload[4 : 4 + length]))
    key = (str(header["owner"]), int(header["block"]))
    return key, tuple(header["ids"]), payload[4 + length :]


class CkksFolders:
    """Names, contexts and checked opening of the CKKS folders under ``root``.

    Args:
        root: The CKKS folder.
        tenant: Bound into every file.
        keks: Key-encryption keys.
        anchor: The state anchor, or ``None``.
        accept_rollback: Collections whose detected loss the operator accepts.
    """

    def __init__(
        self,
        root: Path,
        *,
        tenant: str,
        keks: KekProvider,
        anchor: StateAnchor | None,
        accept_rollback: Collection[str],
    ) -> None:
        self.root, self._tenant, self._keks = root, tenant, keks
        self.anchor, self._accept = anchor, frozenset(accept_rollback)

    def context(
        self, name: str, kind: str, dimension: int, count: int = 0, generation: int = 0
    ) -> SealedContext:
        """The sealed context of a file of collection ``name``."""
        return SealedContext(
            tenant=self._tenant,
            collection=name,
            kind=kind,
            dimension=dimension,
            metric=METRIC,
            element_count=count,
            generation=generation,
        )

    def block_file(self, name: str, owner: str, number: int, generation: int) -> str:
        """A block's file name: opaque (no node name, no number) and versioned."""
        digest = hashlib.sha256(f"{name}|{owner}|{number}".encode()).hexdigest()[:32]
        return f"{digest}-{generation:012d}.sealed"

    def open(self, folder: Path) -> OpenedFolder:
        """Open and check ``folder`` (see the module docstring).

        Raises:
            CollectionError: When the folder has no evaluation context (a half-made create).
            RollbackError: When a committed manifest or block is missing or older.
            IntegrityError: When a file is damaged, swapped or of another version.
        """
        name = folder.name
        if not (folder / EVALUATION_FILE).exists():
            raise CollectionError(
                f"{folder} has no evaluation context (an interrupted create)",
                expected=f"{EVALUATION_FILE} written by the index",
                fix="restore the collection folder from a backup, or remove it to drop it",
            )
        # the header is unauthenticated, but open_sealed checks it against the tenant,
        # name and kind below, so a swapped file is refused
        dimension = read_sealed_header(folder / EVALUATION_FILE).context.dimension
        expected = self.context(name, KIND_EVALUATION, dimension)
        with open_sealed(folder / EVALUATION_FILE, expected=expected, keks=self._keks) as reader:
            evaluation = bytes(reader.read())
        opened = OpenedFolder(dimension, evaluation, self._manifest(folder, dimension))
        listed: set[str] = set()
        for entry in opened.manifest.blocks:
            path = folder / BLOCKS_DIR / entry.file
            if not path.exists():
                self._lost(name, f"block {entry.number} of node {entry.owner!r}", "it is missing")
                opened.lost_blocks = True
                continue
            expected = self.context(name, KIND_BLOCK, dimension, entry.count, entry.generation)
            with open_sealed(path, expected=expected, keks=self._keks) as reader:
                key, ids, raw = _parse_payload(memoryview(reader.read()))
            if key != (entry.owner, entry.number) or sealed_digest(path) != entry.digest:
                raise IntegrityError(path)
            opened.blocks.append((key, ids, EncryptedBlock.from_bytes(raw)))
            listed.add(entry.file)
        for path in sorted((folder / BLOCKS_DIR).glob("*.sealed")):
            if path.name not in listed:  # a crash between block and manifest, or an intruder
                logger.warning(
                    "ckks-collections: %s: removing %s, which no manifest lists", name, path.name
                )
                with contextlib.suppress(OSError):
                    path.unlink()
        return opened

    def _manifest(self, folder: Path, dimension: int) -> CkksManifest:
        """The folder's manifest, checked against the anchor (a legacy folder gets one)."""
        name = folder.name
        anchored = self.anchor.get(name) if self.anchor is not None else None
        if anchored is not None and anchored.kind != KIND_CKKS:
            anchored = None
        if not (folder / MANIFEST_FILE).exists():
            stems = [p.stem for p in (folder / BLOCKS_DIR).glob("*.sealed")]
            if anchored is not None or any("-" in stem for stem in stems):
                self._lost(name, "its manifest", "the manifest file is missing")
            manifest = self._migrate(folder, dimension)
        else:
            manifest = read_manifest(
                folder, tenant=self._tenant, dimension=dimension, keks=self._keks
            )
        if anchored is not None and (
            manifest.generation < anchored.generation
            or (manifest.generation == anchored.generation and manifest.digest != anchored.digest)
        ):
            self._lost(
                name,
                f"manifest generation {anchored.generation}",
                f"the folder holds manifest generation {manifest.generation}",
            )
        if self.anchor is not None:
            state = AnchoredState(KIND_CKKS, manifest.generation, digest=manifest.digest)
            self.anchor.record(name, state, force=name in self._accept)
        return manifest

    def _lost(self, name: str, lost: str, found: str) -> None:
        error = RollbackError(name, lost=lost, found=found)
        if name not in self._accept:
            raise error
        logger.warning("ckks-collections: accepted by the operator: %s", error.problem)

    def _migrate(self, folder: Path, dimension: int) -> CkksManifest:
        """Write the first manifest of a collection stored before manifests existed."""
        entries = []
        for path in sorted((folder / BLOCKS_DIR).glob("*.sealed")):
            expected = self.context(folder.name, KIND_BLOCK, dimension)
            with open_sealed(
                path, expected=expected, keks=self._keks, check_element_count=False
            ) as reader:
                count = reader.context.element_count
                key, _ids, _raw = _parse_payload(memoryview(reader.read()))
            entries.append(BlockEntry(key[0], key[1], path.name, 0, count, sealed_digest(path)))
        logger.info("ckks-collections: %s: wrote its first manifest", folder.name)
        return write_manifest(
            folder,
            CkksManifest(1, tuple(entries)),
            tenant=self._tenant,
            dimension=dimension,
            keks=self._keks,
        )

    def missing_anchored(self) -> dict[str, RollbackError]:
        """Anchored CKKS collections whose folder is gone (each lost every block)."""
        missing: dict[str, RollbackError] = {}
        if self.anchor is None:
            return missing
        for name in self.anchor.names():
            state = self.anchor.get(name)
            if state is None or state.kind != KIND_CKKS or (self.root / name).exists():
                continue
            if name in self._accept:
                self.anchor.forget(name)
                continue
            lost = f"the whole collection (manifest generation {state.generation})"
            missing[name] = RollbackError(name, lost=lost, found="its folder is missing")
            logger.error("ckks-collections: %s", missing[name].problem)
        return missing
