"""Encrypted inner-product search: the index store scores CKKS ciphertexts it cannot read.

Documents and queries stay encrypted under the query gateway's CKKS key (Cheon, Kim, Kim
and Song, "Homomorphic Encryption for Arithmetic of Approximate Numbers", ASIACRYPT 2017;
Microsoft SEAL through TenSEAL's bindings). Three holders, three artefacts:

* the **gateway** holds :class:`~crypto.ckks_search_key.CkksSearchKey`
  (the secret key, :mod:`crypto.ckks_search_key`). It hands nodes the
  *public context* (public key only), hands the store the *evaluation context* (Galois
  and relinearisation keys only), encrypts each query and decrypts the encrypted scores;
* a **member node** turns its unit vectors into :class:`EncryptedBlock` objects with
  :class:`CkksDocumentEncryptor` (public-key encryption: it cannot decrypt them);
* the **index store** keeps the blocks and answers a query with one encrypted score
  vector per block (:class:`CkksInnerProductScorer`); it never holds a key that
  decrypts, so what it stores and computes on is semantically secure under the
  ring-LWE assumption (128-bit parameters, checked by SEAL).

Layout (Halevi and Shoup, "Algorithms in HElib", CRYPTO 2014: the diagonal method with
baby-step/giant-step rotations). A block holds up to ``slots - d + 1`` documents, one per
slot ``s``; its diagonal ``k`` (``0 <= k < d``) holds ``D[s, (s + k) mod d]``. The query
ciphertext holds ``q[s mod d]`` in every slot ``s``, so ``rot(Q, k)[s] = q[(s + k) mod d]``
for every used slot and ``score[s] = sum_k diag_k[s] * rot(Q, k)[s] = <D[s], q>``. With
``k = a * g + b`` the store rotates the query ``g - 1`` times (shared by every block) and
each block's partial sums ``A - 1`` times; nodes store diagonal ``a * g + b`` pre-rotated by
``-a * g``. One ciphertext-ciphertext multiplication deep: one rescale, no bootstrapping.

What it costs: exhaustive scoring (no graph: the store cannot compare distances), about
64 bytes of ciphertext per vector coordinate, and the gateway learns every score of every
query (it holds the key; it is trusted as in DCPE mode). The scores are approximate (CKKS):
errors around 1e-6, far below the gaps that decide a top-10.
"""

from __future__ import annotations

import logging
import math
import struct
import tempfile
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tenseal as ts
import tenseal.sealapi as seal
from numpy.typing import ArrayLike, NDArray

from crypto.errors import CryptoInputError, KeyManagementError

__all__ = [
    "COEFF_MODULUS_BITS",
    "POLY_MODULUS_DEGREE",
    "SCALE_BITS",
    "BlockLayout",
    "CkksDocumentEncryptor",
    "CkksInnerProductScorer",
    "EncryptedBlock",
    "LoadedBlock",
    "ciphertext_words",
]

logger = logging.getLogger(__name__)

POLY_MODULUS_DEGREE = 8192
COEFF_MODULUS_BITS = (60, 40, 60)  # one 40-bit rescale: a single multiplication level
SCALE_BITS = 40
SLOTS = POLY_MODULUS_DEGREE // 2
_CIPHERTEXT_FILE = "ciphertext.bin"
BLOCK_MAGIC = b"FECKKSB1"  # wire and at-rest framing of an EncryptedBlock
_BLOCK_HEAD = struct.Struct("<8sII")  # magic, document count, diagonal count
_LENGTH = struct.Struct("<Q")


def context_error(what: str, exc: Exception) -> KeyManagementError:
    return KeyManagementError(
        f"the CKKS {what} could not be read ({type(exc).__name__})",
        expected=f"the bytes of a CKKS {what} written by fedembed's query gateway",
        fix="copy the file again from the gateway's kit; never edit it by hand",
    )


@dataclass(frozen=True)
class BlockLayout:
    """Where a block's documents and diagonals sit (derived from the vector width).

    Args:
        dimension: Vector width ``d`` (< slots).
        slots: CKKS slots per ciphertext.
    """

    dimension: int
    slots: int = SLOTS

    def __post_init__(self) -> None:
        if not 1 <= self.dimension < self.slots:
            raise CryptoInputError(
                f"vector width {self.dimension} does not fit the CKKS layout",
                expected=f"a width between 1 and {self.slots - 1}",
                fix="encrypt vectors of the shared model's width",
            )

    @property
    def capacity(self) -> int:
        """Documents per block (slot ``s`` may read query slots up to ``s + d - 1``)."""
        return self.slots - self.dimension + 1

    @property
    def baby(self) -> int:
        """Baby steps ``g`` (query rotations shared by every block)."""
        return math.isqrt(self.dimension - 1) + 1

    @property
    def giant(self) -> int:
        """Giant steps ``A`` (rotations of each block's partial sums)."""
        return -(-self.dimension // self.baby)

    def diagonals(self) -> list[tuple[int, int]]:
        """The ``(a, b)`` pairs with ``a * g + b < d``, in storage order."""
        g = self.baby
        return [(a, b) for a in range(self.giant) for b in range(g) if a * g + b < self.dimension]

    def rotation_steps(self) -> list[int]:
        """Every rotation the store performs (the Galois keys it needs)."""
        g = self.baby
        return sorted({*range(1, g), *(a * g for a in range(1, self.giant))})


@dataclass(frozen=True)
class EncryptedBlock:
    """One block of documents as the store holds it: ``count`` and the diagonals' bytes."""

    count: int
    diagonals: tuple[bytes, ...]

    @property
    def nbytes(self) -> int:
        """Ciphertext bytes of the block."""
        return sum(len(d) for d in self.diagonals)

    def to_bytes(self) -> bytes:
        """``magic || count || n || (length || diagonal) * n`` (little-endian)."""
        parts = [_BLOCK_HEAD.pack(BLOCK_MAGIC, self.count, len(self.diagonals))]
        for diagonal in self.diagonals:
            parts += [_LENGTH.pack(len(diagonal)), diagonal]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> EncryptedBlock:
        """Parse :meth:`to_bytes` output (a clear error on anything else)."""
        view = memoryview(data)
        try:
            magic, count, n = _BLOCK_HEAD.unpack_from(view, 0)
            if magic != BLOCK_MAGIC:
                raise ValueError("magic")
            offset, diagonals = _BLOCK_HEAD.size, []
            for _ in range(n):
                (length,) = _LENGTH.unpack_from(view, offset)
                offset += _LENGTH.size
                if offset + length > len(view):
                    raise ValueError("truncated")
                diagonals.append(bytes(view[offset : offset + length]))
                offset += length
            if offset != len(view):
                raise ValueError("trailing bytes")
        except (struct.error, ValueError) as exc:
            raise CryptoInputError(
                f"the encrypted block is malformed ({exc})",
                expected="EncryptedBlock.to_bytes() output: the FECKKSB1 framing of diagonals",
                fix="encrypt the block again with CkksDocumentEncryptor and send it unchanged",
            ) from None
        return cls(count=count, diagonals=tuple(diagonals))


def check_vectors(vectors: ArrayLike, dimension: int, what: str) -> NDArray[np.float64]:
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != dimension:
        raise CryptoInputError(
            f"{what} have shape {array.shape}",
            expected=f"a 2-D array of {dimension}-wide vectors",
            fix=f"pass vectors of the shared model's width ({dimension})",
        )
    if not np.all(np.isfinite(array)):
        raise CryptoInputError(
            f"{what} hold NaN or infinite values",
            expected="finite numbers",
            fix="re-embed the texts; drop vectors that failed to embed",
        )
    norms = np.linalg.norm(array, axis=1)
    if np.any(norms > 1.0 + 1e-3):
        raise CryptoInputError(
            f"{what} have L2 norms up to {float(norms.max()):.4g}",
            expected="unit (or shorter) vectors: the CKKS scale leaves room for scores in [-1, 1]",
            fix="normalise each vector to unit length before encrypting it",
        )
    return array


def _block_diagonals(
    vectors: NDArray[np.float64], layout: BlockLayout
) -> list[NDArray[np.float64]]:
    """The pre-rotated diagonals of one block (slots past ``count`` are zero)."""
    n, d = vectors.shape
    rows = np.arange(n)
    out = []
    for a, b in layout.diagonals():
        k = a * layout.baby + b
        diagonal = np.zeros(layout.slots)
        diagonal[:n] = vectors[rows, (rows + k) % d]
        out.append(np.roll(diagonal, a * layout.baby))  # stored rotated by -a*g
    return out


def _seal_bytes(obj: seal.Ciphertext) -> bytes:
    """A SEAL object's serialisation (SEAL's bindings write to files only)."""
    with tempfile.TemporaryDirectory(prefix="fedembed-ckks-") as folder:
        path = Path(folder) / _CIPHERTEXT_FILE
        obj.save(str(path))
        return path.read_bytes()


def seal_ciphertext(context: ts.Context, data: bytes) -> seal.Ciphertext:
    with tempfile.TemporaryDirectory(prefix="fedembed-ckks-") as folder:
        path = Path(folder) / _CIPHERTEXT_FILE
        path.write_bytes(data)
        ciphertext = seal.Ciphertext()
        ciphertext.load(context.seal_context().data, str(path))
        return ciphertext


def _load_vector(context: ts.Context, data: bytes, what: str) -> seal.Ciphertext:
    try:
        return ts.ckks_vector_from(context, data).ciphertext()[0]
    except Exception as exc:  # TenSEAL raises bare ValueError/RuntimeError on bad bytes
        raise CryptoInputError(
            f"the {what} is not a CKKS ciphertext of this key ({type(exc).__name__})",
            expected=f"a {what} encrypted under the gateway's current CKKS context",
            fix="encrypt it again with the current public context from the gateway",
        ) from exc


def ciphertext_words(context: ts.Context, data: bytes) -> NDArray[np.float64]:
    """The first polynomial's words (first RNS prime) of a stored ciphertext, in [-1, 1).

    What anyone holding ``data`` reads without a key; the audit's attackers start here.
    """
    ciphertext = seal_ciphertext(context, _seal_bytes(_load_vector(context, data, "ciphertext")))
    prime = context.seal_context().data.key_context_data().parms().coeff_modulus()[0].value()
    words = ciphertext.dyn_array()
    raw = np.array([words.at(i) for i in range(ciphertext.poly_modulus_degree())], dtype=np.float64)
    centred: NDArray[np.float64] = (raw - prime / 2.0) / (prime / 2.0)
    return centred


class CkksDocumentEncryptor:
    """A node's encryptor: unit vectors in, :class:`EncryptedBlock` objects out.

    Args:
        public_context: :meth:`CkksSearchKey.public_context` bytes.
        dimension: Vector width.
    """

    def __init__(self, public_context: bytes, *, dimension: int) -> None:
        try:
            self._context = ts.context_from(public_context)
        except Exception as exc:
            raise context_error("public context", exc) from exc
        if self._context.is_private() or not self._context.has_public_key():
            raise KeyManagementError(
                "a node's CKKS context must hold the public key and no secret key",
                expected="the public context the gateway exports",
                fix="use CkksSearchKey.public_context(), never the gateway's key file",
            )
        self._context.global_scale = 2.0**SCALE_BITS
        self.layout = BlockLayout(dimension)

    @property
    def public_context(self) -> ts.Context:
        """The public context this node encrypts with."""
        return self._context

    def encrypt_block(self, vectors: ArrayLike) -> EncryptedBlock:
        """One block of at most ``layout.capacity`` vectors."""
        array = check_vectors(vectors, self.layout.dimension, "document vectors")
        if not 1 <= len(array) <= self.layout.capacity:
            raise CryptoInputError(
                f"a block of {len(array)} vectors",
                expected=f"between 1 and {self.layout.capacity} vectors per block",
                fix="use encrypt(), which splits the vectors into blocks",
            )
        diagonals = tuple(
            bytes(ts.ckks_vector(self._context, diagonal.tolist()).serialize())
            for diagonal in _block_diagonals(array, self.layout)
        )
        return EncryptedBlock(count=len(array), diagonals=diagonals)

    def encrypt(self, vectors: ArrayLike) -> list[EncryptedBlock]:
        """All vectors, in order, split into full blocks and one last partial block."""
        array = check_vectors(vectors, self.layout.dimension, "document vectors")
        cap = self.layout.capacity
        blocks = [self.encrypt_block(array[i : i + cap]) for i in range(0, len(array), cap)]
        logger.info("ckks-search: encrypted %d vectors into %d blocks", len(array), len(blocks))
        return blocks


@dataclass(frozen=True)
class LoadedBlock:
    """A block parsed into SEAL ciphertexts, ready for the scorer."""

    count: int
    diagonals: list[seal.Ciphertext]


class CkksInnerProductScorer:
    """The store's scorer: holds blocks and evaluation keys, never a decrypting key.

    Args:
        evaluation_context: :meth:`CkksSearchKey.evaluation_context` bytes.
        dimension: Vector width.
    """

    def __init__(self, evaluation_context: bytes, *, dimension: int) -> None:
        try:
            self._context = ts.context_from(evaluation_context)
        except Exception as exc:
            raise context_error("evaluation context", exc) from exc
        if self._context.is_private() or not self._context.has_galois_keys():
            raise KeyManagementError(
                "the store's CKKS context must hold Galois keys and no secret key",
                expected="the evaluation context the gateway exports",
                fix="use CkksSearchKey.evaluation_context(), never the gateway's key file",
            )
        self.layout = BlockLayout(dimension)
        seal_context = self._context.seal_context().data
        self._evaluator = seal.Evaluator(seal_context)
        self._galois = self._context.galois_keys().data
        self._relin = self._context.relin_keys().data
        self._blocks: dict[Hashable, tuple[int, list[seal.Ciphertext]]] = {}
        groups: dict[int, list[tuple[int, int]]] = {}
        for index, (a, b) in enumerate(self.layout.diagonals()):
            groups.setdefault(a, []).append((b, index))
        self._groups = [groups[a] for a in sorted(groups)]  # (baby step, diagonal) per giant

    @property
    def counts(self) -> list[int]:
        """Documents per block, in order."""
        return [count for count, _ in self._blocks.values()]

    @property
    def keys(self) -> list[Hashable]:
        """The blocks' keys, in order."""
        return list(self._blocks)

    def load_block(self, block: EncryptedBlock) -> LoadedBlock:
        """Check and parse one node-encrypted block (nothing is kept yet)."""
        expected = len(self.layout.diagonals())
        if len(block.diagonals) != expected or not 1 <= block.count <= self.layout.capacity:
            raise CryptoInputError(
                f"a block of {block.count} documents with {len(block.diagonals)} diagonals",
                expected=f"{expected} diagonals and 1..{self.layout.capacity} documents",
                fix="encrypt the block with CkksDocumentEncryptor for the same vector width",
            )
        diagonals = [_load_vector(self._context, d, "document diagonal") for d in block.diagonals]
        return LoadedBlock(block.count, diagonals)

    def add_block(
        self, block: EncryptedBlock | LoadedBlock, key: Hashable | None = None
    ) -> Hashable:
        """Keep one block (replacing the block of the same ``key``); returns its key."""
        loaded = block if isinstance(block, LoadedBlock) else self.load_block(block)
        key = len(self._blocks) if key is None else key
        self._blocks[key] = (loaded.count, loaded.diagonals)
        return key

    def remove_block(self, key: Hashable) -> bool:
        """Forget a block; whether it was there."""
        return self._blocks.pop(key, None) is not None

    def _rotate(self, ciphertext: seal.Ciphertext, step: int) -> seal.Ciphertext:
        out = seal.Ciphertext()
        self._evaluator.rotate_vector(ciphertext, step, self._galois, out)
        return out

    def score(self, query: bytes, keys: Sequence[Hashable] | None = None) -> list[bytes]:
        """One encrypted score vector per block (all, or those of ``keys`` in that order)."""
        q = _load_vector(self._context, query, "query")
        g, ev = self.layout.baby, self._evaluator
        babies = [q, *(self._rotate(q, b) for b in range(1, g))]
        results = []
        for key in self.keys if keys is None else keys:
            _, diagonals = self._blocks[key]
            total: seal.Ciphertext | None = None
            for a, group in enumerate(self._groups):
                partial = seal.Ciphertext()
                ev.multiply(diagonals[group[0][1]], babies[group[0][0]], partial)
                for b, index in group[1:]:
                    product = seal.Ciphertext()
                    ev.multiply(diagonals[index], babies[b], product)
                    ev.add_inplace(partial, product)
                ev.relinearize_inplace(partial, self._relin)
                if a:
                    partial = self._rotate(partial, a * g)
                if total is None:
                    total = partial
                else:
                    ev.add_inplace(total, partial)
            assert total is not None  # every block has diagonal 0
            ev.rescale_to_next_inplace(total)
            results.append(_seal_bytes(total))
        logger.info("ckks-search: scored %d blocks", len(results))
        return results
