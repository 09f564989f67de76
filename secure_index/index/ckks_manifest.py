"""The sealed manifest of a CKKS collection: which blocks exist, at which generation.

A CKKS collection is a set of independent block files, so without a manifest a deleted,
rolled-back or added block would go unnoticed. ``manifest.sealed`` (a sealed file of kind
``ckks-manifest`` whose context binds the collection and a generation counter) lists
every block: owner, number, file, the generation it was written at, its document count
and the digest of its authenticated header. Every put or delete writes the new block
file first, then the next manifest generation (the commit point, atomic), then removes
the replaced file; a crash leaves at most an unreferenced file, which the next open
removes. A block file is checked against its entry on open: a missing file, another
version (its context generation and digest differ) or another block is refused.

The digest is SHA-256 of the sealed file's authenticated header (format, salt, nonce
prefix, length and context: everything but the wrapped data key), which binds the whole
body, since the body's keys and tags derive from those bytes. Re-wrapping a file under a
new KEK leaves it unchanged. The manifest's own digest is what the state anchor records.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from index_client.vector_space import VectorSpace
from secure_index.errors import IntegrityError
from secure_index.sealing.envelope_header import (
    MAX_HEADER_SIZE,
    HeaderFormatError,
    unpack_envelope,
)
from secure_index.sealing.key_encryption_keys import KekProvider
from secure_index.sealing.sealed_file import (
    SEAL_MAGIC,
    SealedContext,
    open_sealed,
    read_sealed_header,
    write_sealed,
)

__all__ = [
    "KIND_MANIFEST",
    "MANIFEST_FILE",
    "BlockEntry",
    "CkksManifest",
    "read_manifest",
    "sealed_digest",
    "write_manifest",
]

MANIFEST_FILE = "manifest.sealed"
KIND_MANIFEST = "ckks-manifest"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class BlockEntry:
    """One block in the manifest."""

    owner: str
    number: int
    file: str
    generation: int
    count: int
    digest: str
    # the encoder space of its vectors (index_client.vector_space); none: not named
    space: str | None = None
    encoder_backend: str | None = None
    model_fingerprint: str | None = None

    @property
    def vector_space(self) -> VectorSpace | None:
        """The space its uploader named (None: an older client, the torch space)."""
        return VectorSpace.from_fields(asdict(self))


@dataclass(frozen=True)
class CkksManifest:
    """The committed state of a CKKS collection: its generation and blocks."""

    generation: int
    blocks: tuple[BlockEntry, ...]
    digest: str = ""  # of the manifest file itself, once written or read

    def by_key(self) -> dict[tuple[str, int], BlockEntry]:
        """The blocks by (owner, number)."""
        return {(b.owner, b.number): b for b in self.blocks}


def sealed_digest(path: Path) -> str:
    """SHA-256 (hex) of a sealed file's authenticated header (stable under re-wrapping).

    Raises:
        IntegrityError: When the file is missing or its header is malformed.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_HEADER_SIZE)
        return hashlib.sha256(unpack_envelope(head, SEAL_MAGIC).authenticated).hexdigest()
    except (OSError, HeaderFormatError, ValueError):
        raise IntegrityError(path) from None


def _context(tenant: str, name: str, dimension: int, generation: int) -> SealedContext:
    return SealedContext(
        tenant=tenant,
        collection=name,
        kind=KIND_MANIFEST,
        dimension=dimension,
        generation=generation,
    )


def write_manifest(
    folder: Path,
    manifest: CkksManifest,
    *,
    tenant: str,
    dimension: int,
    keks: KekProvider,
    name: str | None = None,
) -> CkksManifest:
    """Seal ``manifest`` over ``folder``'s manifest file (atomic); returns it with its digest.

    ``name`` is the collection's name when ``folder`` is not yet named after it.

    Raises:
        StorageError: When it cannot be written (the previous manifest stays).
    """
    body = json.dumps(
        {"generation": manifest.generation, "blocks": [asdict(b) for b in manifest.blocks]},
        sort_keys=True,
    ).encode()
    path = folder / MANIFEST_FILE
    write_sealed(
        path,
        body,
        context=_context(tenant, name or folder.name, dimension, manifest.generation),
        keks=keks,
    )
    return CkksManifest(manifest.generation, manifest.blocks, sealed_digest(path))


def read_manifest(folder: Path, *, tenant: str, dimension: int, keks: KekProvider) -> CkksManifest:
    """Open and authenticate ``folder``'s manifest.

    Raises:
        IntegrityError: When it is damaged, swapped in from another collection or forged.
    """
    path = folder / MANIFEST_FILE
    generation = read_sealed_header(path).context.generation  # checked by open_sealed
    expected = _context(tenant, folder.name, dimension, generation)
    with open_sealed(path, expected=expected, keks=keks) as reader:
        document = json.loads(bytes(reader.read()))
    try:
        blocks = tuple(BlockEntry(**entry) for entry in document["blocks"])
        if int(document["generation"]) != generation:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(path) from None
    return CkksManifest(generation, blocks, sealed_digest(path))
