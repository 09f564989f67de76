"""CKKS collections: node-encrypted blocks the store scores without a decrypting key.

A CKKS collection holds the gateway's *evaluation* context (Galois and relinearisation
keys, no secret key) and blocks of documents that member nodes encrypted with the
gateway's public context (:mod:`crypto.ckks_search`). A block belongs to
one node and has a number chosen by that node; putting a block replaces the node's block
of that number, so uploads are idempotent. A query is an encrypted vector; the answer is
one encrypted score vector per block plus the block's owner and document ids, which the
gateway decrypts and ranks.

At rest every file is a sealed file (AES-256-GCM envelope under the store's KEK, context
bound: tenant, collection, kind, dimension, document count), so a stolen disk holds
ciphertexts of ciphertexts; in memory the store holds only CKKS ciphertexts.

Layout: ``<root>/<collection>/evaluation.sealed`` and
``<root>/<collection>/blocks/<sha256(collection|owner|number)[:32]>.sealed`` (payload: a
length-prefixed JSON header ``{"owner", "block", "ids"}`` then the block's framing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crypto.ckks_search import CkksInnerProductScorer, EncryptedBlock
from secure_index.atomic_file import storage_error
from secure_index.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    OwnershipError,
    RequestError,
)
from secure_index.index.collection_spec import (
    COLLECTION_PATTERN,
    validate_doc_id,
)
from secure_index.sealing.key_encryption_keys import KekProvider
from secure_index.sealing.sealed_file import (
    SealedContext,
    open_sealed,
    read_sealed_header,
    write_sealed,
)

__all__ = ["CkksCollectionInfo", "CkksCollections", "ScoredBlock"]

logger = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.sealed"
BLOCKS_DIR = "blocks"
KIND_EVALUATION = "ckks-evaluation"
KIND_BLOCK = "ckks-block"
METRIC = "ip"
MAX_BLOCK_NUMBER = 1_000_000
_HEADER_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class CkksCollectionInfo:
    """A CKKS collection's sizes (never key material)."""

    name: str
    dimension: int
    documents: int
    blocks: int
    stored_bytes: int


@dataclass(frozen=True)
class ScoredBlock:
    """One block's encrypted answer: its owner, its document ids, the score ciphertext."""

    owner: str
    ids: tuple[str, ...]
    answer: bytes


@dataclass
class _Collection:
    dimension: int
    scorer: CkksInnerProductScorer
    ids: dict[tuple[str, int], tuple[str, ...]]
    sizes: dict[tuple[str, int], int]


def _check_name(name: str) -> None:
    if not COLLECTION_PATTERN.match(name):
        raise RequestError(
            f"collection name {name!r} is not allowed",
            expected="1-64 letters, digits, '_', '.' or '-'",
            fix="choose another name",
        )


def _check_block_ref(owner: str, number: int) -> None:
    if not COLLECTION_PATTERN.match(owner):
        raise RequestError(
            f"owner {owner!r} is not a node name",
            expected="1-64 letters, digits, '_', '.' or '-'",
            fix="upload with a node key",
        )
    if not 0 <= number < MAX_BLOCK_NUMBER:
        raise RequestError(
            f"block number {number}",
            expected=f"0 <= block < {MAX_BLOCK_NUMBER}",
            fix="number a node's blocks 0, 1, 2, ...",
        )


class CkksCollections:
    """The store's CKKS collections under ``root`` (loaded at start).

    Args:
        root: Folder of the CKKS collections.
        keks: Key-encryption keys for the sealed files.
        tenant: The consortium's tenant name (bound into every file).
    """

    def __init__(self, root: Path, *, keks: KekProvider, tenant: str) -> None:
        self.root = Path(root)
        self._keks, self._tenant = keks, tenant
        self._lock = threading.Lock()
        self._collections: dict[str, _Collection] = {}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, path=self.root, operation="create the CKKS folder") from exc
        for folder in sorted(p for p in self.root.iterdir() if (p / EVALUATION_FILE).exists()):
            self._load(folder)

    # -- files ------------------------------------------------------------------------
    def _context(self, name: str, kind: str, dimension: int, count: int = 0) -> SealedContext:
        return SealedContext(
            tenant=self._tenant,
            collection=name,
            kind=kind,
            dimension=dimension,
            metric=METRIC,
            element_count=count,
        )

    def _block_path(self, name: str, owner: str, number: int) -> Path:
        # an opaque name: a disk thief learns neither node names nor block numbers
        digest = hashlib.sha256(f"{name}|{owner}|{number}".encode()).hexdigest()[:32]
        return self.root / name / BLOCKS_DIR / f"{digest}.sealed"

    def _load(self, folder: Path) -> None:
        name = folder.name
        # the header is unauthenticated, but open_sealed checks it against the tenant,
        # name and kind below, so a swapped file is refused
        dimension = read_sealed_header(folder / EVALUATION_FILE).context.dimension
        expected = self._context(name, KIND_EVALUATION, dimension)
        with open_sealed(folder / EVALUATION_FILE, expected=expected, keks=self._keks) as reader:
            evaluation = bytes(reader.read())
        collection = _Collection(
            dimension, CkksInnerProductScorer(evaluation, dimension=dimension), {}, {}
        )
        for path in sorted((folder / BLOCKS_DIR).glob("*.sealed")):
            expected = self._context(name, KIND_BLOCK, dimension)
            with open_sealed(
                path, expected=expected, keks=self._keks, check_element_count=False
            ) as reader:
                payload = memoryview(reader.read())
            (length,) = _HEADER_LENGTH.unpack_from(payload, 0)
            header = json.loads(bytes(payload[4 : 4 + length]))
            block = EncryptedBlock.from_bytes(payload[4 + length :])
            key = (str(header["owner"]), int(header["block"]))
            collection.scorer.add_block(block, key)
            collection.ids[key] = tuple(header["ids"])
            collection.sizes[key] = block.nbytes
        self._collections[name] = collection
        logger.info("ckks-collections: loaded %s (%d blocks)", name, len(collection.ids))

    # -- operations ---------------------------------------------------------------------
    def _get(self, name: str) -> _Collection:
        try:
            return self._collections[name]
        except KeyError:
            raise CollectionNotFoundError(
                f"no CKKS collection named {name!r}",
                expected=f"one of {sorted(self._collections)}",
                fix="create it with the admin API first",
            ) from None

    def names(self) -> list[str]:
        """The CKKS collections."""
        return sorted(self._collections)

    def info(self, name: str) -> CkksCollectionInfo:
        """A collection's sizes."""
        c = self._get(name)
        return CkksCollectionInfo(
            name=name,
            dimension=c.dimension,
            documents=sum(len(ids) for ids in c.ids.values()),
            blocks=len(c.ids),
            stored_bytes=sum(c.sizes.values()),
        )

    def create(self, name: str, *, dimension: int, evaluation_context: bytes) -> CkksCollectionInfo:
        """A new, empty collection scored with ``evaluation_context``."""
        _check_name(name)
        with self._lock:
            if name in self._collections:
                raise CollectionExistsError(
                    f"a CKKS collection named {name!r} exists",
                    expected="a new name",
                    fix="use the existing collection or choose another name",
                )
            scorer = CkksInnerProductScorer(evaluation_context, dimension=dimension)
            folder = self.root / name
            try:
                (folder / BLOCKS_DIR).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise storage_error(exc, path=folder, operation="create the collection") from exc
            write_sealed(
                folder / EVALUATION_FILE,
                evaluation_context,
                context=self._context(name, KIND_EVALUATION, dimension),
                keks=self._keks,
            )
            self._collections[name] = _Collection(dimension, scorer, {}, {})
        logger.info("ckks-collections: created %s (d=%d)", name, dimension)
        return self.info(name)

    def put_block(
        self, name: str, owner: str, number: int, ids: Sequence[str], block: EncryptedBlock
    ) -> CkksCollectionInfo:
        """Insert or replace ``owner``'s block ``number`` (durable when it returns)."""
        _check_block_ref(owner, number)
        checked = tuple(validate_doc_id(doc_id) for doc_id in ids)
        if len(checked) != block.count or len(set(checked)) != len(checked):
            raise RequestError(
                f"{len(checked)} ids ({len(set(checked))} distinct) for a block of "
                f"{block.count} documents",
                expected="one distinct id per encrypted document, in block order",
                fix="send the ids of the vectors the block was encrypted from",
            )
        with self._lock:
            c = self._get(name)
            key = (owner, number)
            taken = {d: k for k, ids_ in c.ids.items() if k != key for d in ids_}
            clash = [d for d in checked if d in taken]
            if clash:
                other = taken[clash[0]]
                error = OwnershipError if other[0] != owner else RequestError
                raise error(
                    f"{len(clash)} ids are already in block {other[1]} of node {other[0]!r}, "
                    f"e.g. {clash[0]!r}",
                    expected="each document id in one block only",
                    fix="delete the older block first, or keep the id in the same block",
                )
            loaded = c.scorer.load_block(block)  # junk is refused before anything is written
            header = json.dumps({"owner": owner, "block": number, "ids": list(checked)}).encode()
            write_sealed(
                self._block_path(name, owner, number),
                [_HEADER_LENGTH.pack(len(header)), header, block.to_bytes()],
                context=self._context(name, KIND_BLOCK, c.dimension, block.count),
                keks=self._keks,
            )
            c.scorer.add_block(loaded, key)  # only once the sealed file is durable
            c.ids[key], c.sizes[key] = checked, block.nbytes
        logger.info(
            "ckks-collections: %s: node %s put block %d (%d docs)", name, owner, number, block.count
        )
        return self.info(name)

    def delete_block(self, name: str, owner: str, number: int) -> bool:
        """Delete ``owner``'s block ``number``; whether it existed."""
        _check_block_ref(owner, number)
        with self._lock:
            c = self._get(name)
            key = (owner, number)
            if key not in c.ids:
                return False
            try:
                self._block_path(name, owner, number).unlink()
            except OSError as exc:
                raise storage_error(exc, path=self.root / name, operation="delete a block") from exc
            c.scorer.remove_block(key)
            del c.ids[key], c.sizes[key]
        logger.info("ckks-collections: %s: node %s deleted block %d", name, owner, number)
        return True

    def score(self, name: str, query: bytes, *, owner: str | None = None) -> list[ScoredBlock]:
        """The encrypted answer of every block (of ``owner`` only, when given)."""
        with self._lock:
            c = self._get(name)
            keys = [k for k in c.ids if owner is None or k[0] == owner]
            answers = c.scorer.score(query, keys) if keys else []
            return [
                ScoredBlock(owner=k[0], ids=c.ids[k], answer=a)
                for k, a in zip(keys, answers, strict=True)
            ]
