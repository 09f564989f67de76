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

Layout: ``<root>/<collection>/evaluation.sealed``, ``manifest.sealed`` (the blocks and a
generation counter, :mod:`secure_index.index.ckks_manifest`) and
``blocks/<sha256(collection|owner|number)[:32]>-<generation>.sealed`` (payload: a
length-prefixed JSON header ``{"owner", "block", "ids"}`` then the block's framing).
A deleted, rolled-back or foreign block is refused on open, an added one is ignored and
removed, and the state anchor (:mod:`secure_index.storage.state_anchor`) refuses a
manifest older than the newest one committed. A collection is created in a temporary
folder and renamed into place; one that cannot be opened is reported on its own
(:meth:`CkksCollections.broken`) while the others are served. CKKS and HNSW collections
share one name space (:class:`~secure_index.index.store_layout.CollectionNamespace`).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crypto.ckks_search import CkksInnerProductScorer, EncryptedBlock
from embedding_core.errors import FedembedError
from index_client.names import NAME_RULE, name_problem, shown
from index_client.vector_space import VectorSpace
from secure_index.atomic_file import fsync_directory, storage_error
from secure_index.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    CollectionUnavailableError,
    OwnershipError,
    RequestError,
)
from secure_index.index.ckks_folder import (
    BLOCKS_DIR,
    EVALUATION_FILE,
    KIND_BLOCK,
    KIND_EVALUATION,
    METRIC,
    CkksFolders,
    block_payload,
)
from secure_index.index.ckks_manifest import (
    BlockEntry,
    CkksManifest,
    read_manifest,
    sealed_digest,
    write_manifest,
)
from secure_index.index.collection_space import check_vectors_join
from secure_index.index.collection_spec import (
    COLLECTION_PATTERN,
    validate_doc_id,
)
from secure_index.index.store_layout import (
    CKKS_DIR,
    DIR_MODE,
    KIND_CKKS,
    CollectionNamespace,
    commit_directory,
    make_directory,
    remove_temporary_directories,
    temporary_directory,
)
from secure_index.sealing.key_encryption_keys import KekProvider
from secure_index.sealing.sealed_file import (
    rewrap_sealed,
    write_sealed,
)
from secure_index.storage.state_anchor import AnchoredState, StateAnchor

__all__ = [
    "BLOCKS_DIR",
    "EVALUATION_FILE",
    "KIND_BLOCK",
    "KIND_EVALUATION",
    "METRIC",
    "CkksCollectionInfo",
    "CkksCollections",
    "ScoredBlock",
]

logger = logging.getLogger(__name__)

MAX_BLOCK_NUMBER = 1_000_000


@dataclass(frozen=True)
class CkksCollectionInfo:
    """A CKKS collection's sizes (never key material)."""

    name: str
    dimension: int
    documents: int
    blocks: int
    stored_bytes: int
    space: str | None = None  # the encoder space its blocks named, if any
    encoder_backend: str | None = None
    model_fingerprint: str | None = None


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
    manifest: CkksManifest = field(default_factory=lambda: CkksManifest(1, ()))


def _check_name(name: str) -> None:
    problem = name_problem(name)  # the one rule: never '.', '..' or a '/' (a folder below root)
    if problem is not None:
        raise RequestError(
            f"collection name {shown(name)} is not allowed: {problem}",
            expected=NAME_RULE,
            fix="choose a name such as 'claims-2026'",
        )


def _blocks_space(blocks: Sequence[BlockEntry]) -> VectorSpace | None:
    """The encoder space the blocks named (one, by construction; None: none named one)."""
    return next((s for b in blocks if (s := b.vector_space) is not None), None)


def _check_block_ref(owner: str, number: int) -> None:
    if not COLLECTION_PATTERN.match(owner):
        raise RequestError(
            f"owner {shown(owner)} is not a node name",
            expected=NAME_RULE,
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
        namespace: The store's name space shared with its HNSW collections (default:
            the folder's own, which still sees HNSW folders beside ``ckks/`` on disk).
        anchor: The store's state anchor (``None``: a rolled-back manifest is not
            detected).
        accept_rollback: Collections whose detected loss the operator accepts.
    """

    def __init__(
        self,
        root: Path,
        *,
        keks: KekProvider,
        tenant: str,
        namespace: CollectionNamespace | None = None,
        anchor: StateAnchor | None = None,
        accept_rollback: Collection[str] = (),
    ) -> None:
        self.root = Path(root)
        self._keks, self._tenant = keks, tenant
        self._anchor = anchor
        self._folders = CkksFolders(
            self.root, tenant=tenant, keks=keks, anchor=anchor, accept_rollback=accept_rollback
        )
        self._namespace = namespace or CollectionNamespace(
            self.root.parent if self.root.name == CKKS_DIR else None
        )
        self._lock = threading.Lock()
        self._collections: dict[str, _Collection] = {}
        self._broken: dict[str, FedembedError] = {}
        try:
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, path=self.root, operation="create the CKKS folder") from exc
        remove_temporary_directories(self.root)
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            try:
                self._load(folder)
            except FedembedError as exc:
                logger.error("ckks-collections: %s is unavailable: %s", folder.name, exc.problem)
                self._broken[folder.name] = exc
            self._namespace.register(folder.name, KIND_CKKS)
        for name, error in self._folders.missing_anchored().items():
            self._broken[name] = error
            self._namespace.register(name, KIND_CKKS)

    # -- files ------------------------------------------------------------------------
    def _load(self, folder: Path) -> None:
        opened = self._folders.open(folder)
        scorer = CkksInnerProductScorer(opened.evaluation, dimension=opened.dimension)
        collection = _Collection(opened.dimension, scorer, {}, {}, opened.manifest)
        for key, ids, block in opened.blocks:
            scorer.add_block(block, key)
            collection.ids[key], collection.sizes[key] = ids, block.nbytes
        if opened.lost_blocks:  # an accepted loss: commit what is left
            kept = tuple(b for b in opened.manifest.blocks if (b.owner, b.number) in collection.ids)
            self._commit(folder.name, collection, kept)
        self._collections[folder.name] = collection
        logger.info(
            "ckks-collections: loaded %s (generation %d, %d blocks)",
            folder.name,
            collection.manifest.generation,
            len(collection.ids),
        )

    def _commit(self, name: str, c: _Collection, blocks: tuple[BlockEntry, ...]) -> None:
        """Write the next manifest generation (the commit point) and anchor it."""
        manifest = write_manifest(
            self.root / name,
            CkksManifest(c.manifest.generation + 1, blocks),
            tenant=self._tenant,
            dimension=c.dimension,
            keks=self._keks,
        )
        c.manifest = manifest
        if self._anchor is not None:
            self._anchor.record(
                name, AnchoredState(KIND_CKKS, manifest.generation, digest=manifest.digest)
            )

    def _remove(self, name: str, file: str) -> None:
        path = self.root / name / BLOCKS_DIR / file
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.warning("ckks-collections: could not remove %s: %s", path, exc.strerror)
            return
        fsync_directory(path.parent)

    # -- operations ---------------------------------------------------------------------
    def _get(self, name: str) -> _Collection:
        try:
            return self._collections[name]
        except KeyError:
            if name in self._broken:
                raise CollectionUnavailableError(name, self._broken[name]) from None
            raise CollectionNotFoundError(
                f"no CKKS collection named {name!r}",
                expected=f"one of {sorted(self._collections)}",
                fix="create it with the admin API first",
            ) from None

    def names(self) -> list[str]:
        """The CKKS collections that are open (see :meth:`broken`)."""
        return sorted(self._collections)

    def broken(self) -> dict[str, FedembedError]:
        """The CKKS collections that could not be opened, each with its error."""
        return dict(self._broken)

    def info(self, name: str) -> CkksCollectionInfo:
        """A collection's sizes."""
        c = self._get(name)
        space = _blocks_space(c.manifest.blocks)
        return CkksCollectionInfo(
            name=name,
            dimension=c.dimension,
            documents=sum(len(ids) for ids in c.ids.values()),
            blocks=len(c.ids),
            stored_bytes=sum(c.sizes.values()),
            space=space.space if space is not None else None,
            encoder_backend=space.encoder_backend if space is not None else None,
            model_fingerprint=space.model_fingerprint if space is not None else None,
        )

    def create(self, name: str, *, dimension: int, evaluation_context: bytes) -> CkksCollectionInfo:
        """A new, empty collection scored with ``evaluation_context``.

        It is written in a temporary folder and renamed into place, so a failed create
        leaves nothing; its name must be free among every collection kind.

        Raises:
            CollectionExistsError: When any collection (CKKS, at-rest, DCPE) has the name.
        """
        _check_name(name)
        with self._namespace.lock, self._lock:
            if name in self._collections or name in self._broken:
                raise CollectionExistsError(
                    f"a CKKS collection named {name!r} exists",
                    expected="a new name",
                    fix="use the existing collection or choose another name",
                )
            self._namespace.check_free(name)
            scorer = CkksInnerProductScorer(evaluation_context, dimension=dimension)
            temp = temporary_directory(self.root, name)
            try:
                make_directory(temp / BLOCKS_DIR)
                write_sealed(
                    temp / EVALUATION_FILE,
                    evaluation_context,
                    context=self._folders.context(name, KIND_EVALUATION, dimension),
                    keks=self._keks,
                )
                write_manifest(
                    temp,
                    CkksManifest(1, ()),
                    tenant=self._tenant,
                    dimension=dimension,
                    keks=self._keks,
                    name=name,
                )  # fmt: skip (built in a temporary folder: name it)
            except BaseException:
                shutil.rmtree(temp, ignore_errors=True)
                raise
            commit_directory(temp, self.root / name)
            manifest = read_manifest(
                self.root / name, tenant=self._tenant, dimension=dimension, keks=self._keks
            )
            self._collections[name] = _Collection(dimension, scorer, {}, {}, manifest)
            self._namespace.register(name, KIND_CKKS)
            if self._anchor is not None:
                self._anchor.record(name, AnchoredState(KIND_CKKS, 1, digest=manifest.digest))
        logger.info("ckks-collections: created %s (d=%d)", name, dimension)
        return self.info(name)

    def put_block(
        self,
        name: str,
        owner: str,
        number: int,
        ids: Sequence[str],
        block: EncryptedBlock,
        *,
        space: VectorSpace | None = None,
    ) -> CkksCollectionInfo:
        """Insert or replace ``owner``'s block ``number`` (durable when it returns).

        ``space`` is the encoder space of the encrypted vectors (None: an older client,
        the torch space); a block of another space than the collection's other blocks is
        refused with :class:`~secure_index.errors.VectorSpaceError`.
        """
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
            beside = [b for b in c.manifest.blocks if (b.owner, b.number) != key]
            check_vectors_join(name, _blocks_space(beside), space, populated=bool(beside))
            loaded = c.scorer.load_block(block)  # junk is refused before anything is written
            generation = c.manifest.generation + 1
            file = self._folders.block_file(name, owner, number, generation)
            path = self.root / name / BLOCKS_DIR / file
            write_sealed(
                path,
                block_payload(owner, number, checked, block.to_bytes()),
                context=self._folders.context(
                    name, KIND_BLOCK, c.dimension, block.count, generation
                ),
                keks=self._keks,
            )
            entry = BlockEntry(
                owner,
                number,
                file,
                generation,
                block.count,
                sealed_digest(path),
                space=space.space if space is not None else None,
                encoder_backend=space.encoder_backend if space is not None else None,
                model_fingerprint=space.model_fingerprint if space is not None else None,
            )
            old = c.manifest.by_key().get(key)
            others = tuple(b for b in c.manifest.blocks if (b.owner, b.number) != key)
            try:
                self._commit(name, c, (*others, entry))
            except BaseException:
                if c.manifest.generation < generation:  # not committed: drop the new file
                    self._remove(name, file)
                raise
            if old is not None:
                self._remove(name, old.file)
            c.scorer.add_block(loaded, key)  # only once the manifest is durable
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
            old = c.manifest.by_key()[key]
            self._commit(name, c, tuple(b for b in c.manifest.blocks if b is not old))
            self._remove(name, old.file)
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

    def rewrap(self) -> int:
        """Re-wrap every sealed file of every collection under the primary KEK.

        Only each file's data key is wrapped anew; the body is copied as is. Files are
        replaced one at a time, atomically, so an interrupted run leaves every file
        readable (old KEK versions stay in the key file until retired) and a new run
        finishes it.

        Returns:
            The number of files re-wrapped (files already under the primary are skipped).
        """
        changed = 0
        with self._lock:
            for name in sorted(self._collections):
                for path in sorted((self.root / name).rglob("*.sealed")):
                    changed += int(rewrap_sealed(path, keks=self._keks))
        logger.info(
            "ckks-collections: re-wrapped %d file(s) under %s", changed, self._keks.primary_id
        )
        return changed
