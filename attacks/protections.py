"""Protections an attack is run against: what a deployment does to embeddings.

* :class:`RawEmbeddings`: no protection (the baseline).
* :class:`GaussianNoise`: i.i.d. ``N(0, sigma^2)`` per coordinate added to each vector,
  optionally renormalised to unit length (the deployment ships unit vectors; this is the
  Gaussian mechanism's noise shape, Dwork and Roth, "The Algorithmic Foundations of
  Differential Privacy", 2014, without a calibrated sensitivity: a noise sweep, not a DP
  claim).
* :class:`DcpeProtection`: the index's Scale-And-Perturb encryption (Fuchsbauer, Ghosal,
  Hauke and O'Neill, SCN 2022; :mod:`crypto.dcpe`) under one fresh key.
* :class:`KeyedRotation`: a secret random orthogonal matrix (keeps every inner product;
  measured, not shipped: known plaintexts undo it, and so does aligning the rotated
  vectors with in-domain public embeddings,
  :class:`~attacks.distribution_alignment.DistributionAlignmentAttacker`).
* :class:`CkksEncryptedSearch`: the store holds documents as CKKS ciphertexts under the
  query gateway's key and scores encrypted queries without decrypting
  (:mod:`crypto.ckks_search`); the attacker reads the ciphertext words at each
  document's slots (all it has without the key).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from crypto.ckks_search import (
    CkksDocumentEncryptor,
    CkksInnerProductScorer,
    ciphertext_words,
)
from crypto.ckks_search_key import CkksSearchKey
from crypto.dcpe import DcpeKey, ScaleAndPerturb

__all__ = [
    "CkksEncryptedSearch",
    "DcpeProtection",
    "GaussianNoise",
    "KeyedRotation",
    "RawEmbeddings",
]

logger = logging.getLogger(__name__)

DCPE_TENANT = "attack-eval"
_EPS = 1e-12
_ROTATION_KEY_BYTES = 16


class RawEmbeddings:
    """No protection: vectors leave their owner as they are (copied)."""

    @property
    def name(self) -> str:
        """Table label."""
        return "raw"

    def protect(self, vectors: np.ndarray) -> NDArray[np.float32]:
        """A float32 copy of ``vectors``."""
        return np.array(vectors, dtype=np.float32, copy=True)


class GaussianNoise:
    """Add ``N(0, sigma^2 I)`` to every vector, then optionally renormalise.

    Args:
        sigma: Per-coordinate standard deviation (>= 0).
        seed: Seed of the noise generator (each :meth:`protect` call draws fresh noise
            from the generator's continuing stream).
        renormalise: Scale each noised vector back to unit L2 norm.
    """

    def __init__(self, sigma: float, seed: int = 0, *, renormalise: bool = True) -> None:
        if not (sigma >= 0.0 and np.isfinite(sigma)):
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
        self.sigma = float(sigma)
        self.renormalise = renormalise
        self._rng = np.random.default_rng(seed)

    @property
    def name(self) -> str:
        """Table label."""
        return f"gaussian sigma={self.sigma:g}"

    def protect(self, vectors: np.ndarray) -> NDArray[np.float32]:
        """Noised (and renormalised) float32 copies of ``vectors``."""
        array = np.asarray(vectors, dtype=np.float64)
        noised = array + self._rng.normal(0.0, self.sigma, size=array.shape)
        if self.renormalise:
            noised /= np.maximum(np.linalg.norm(noised, axis=-1, keepdims=True), _EPS)
        result: NDArray[np.float32] = noised.astype(np.float32)
        return result


class DcpeProtection:
    """Scale-And-Perturb ciphertexts under one key (fresh unless given).

    Args:
        beta: The approximation bound of a fresh key.
        key: Use this key instead of generating one (its beta wins).
    """

    def __init__(self, beta: float, *, key: DcpeKey | None = None) -> None:
        self.key = key if key is not None else DcpeKey.generate(tenant=DCPE_TENANT, beta=beta)
        self.beta = self.key.beta
        self.scheme = ScaleAndPerturb(self.key)

    @property
    def name(self) -> str:
        """Table label."""
        return f"dcpe beta={self.beta:g}"

    def protect(self, vectors: np.ndarray) -> NDArray[np.float32]:
        """The ciphertext vectors (what the index store sees); nonces are dropped."""
        return self.scheme.encrypt(np.asarray(vectors)).vectors


class KeyedRotation:
    """Multiply every vector by a secret random orthogonal matrix (a keyed isometry).

    Inner products and distances are kept exactly, so retrieval on rotated documents with
    rotated queries is unchanged; an attacker without the key sees vectors in a space its
    encoder does not produce. A measurement, not a shipped protection: any keyed *linear*
    map is undone by a known-plaintext attacker with about ``d`` (plaintext, ciphertext)
    pairs (:class:`~attacks.known_plaintext_map.LinearMapAttacker`), and without any pair
    by aligning the rotated cloud with in-domain public embeddings
    (:class:`~attacks.distribution_alignment.DistributionAlignmentAttacker`).

    Args:
        dimension: Vector width.
        key: Secret bytes (>= 16) that seed the rotation; fresh random bytes if ``None``.
    """

    def __init__(self, dimension: int, *, key: bytes | None = None) -> None:
        if dimension < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension}")
        secret = key if key is not None else secrets.token_bytes(_ROTATION_KEY_BYTES)
        if len(secret) < _ROTATION_KEY_BYTES:
            raise ValueError(f"key must hold >= {_ROTATION_KEY_BYTES} bytes, got {len(secret)}")
        rng = np.random.default_rng(int.from_bytes(secret, "big"))
        q, r = np.linalg.qr(rng.standard_normal((dimension, dimension)))
        self._matrix = q * np.sign(np.diag(r))[None, :]  # Haar-distributed (Mezzadri 2007)

    @property
    def name(self) -> str:
        """Table label."""
        return "keyed rotation"

    def protect(self, vectors: np.ndarray) -> NDArray[np.float32]:
        """The rotated float32 copies of ``vectors``."""
        result: NDArray[np.float32] = (np.asarray(vectors, np.float64) @ self._matrix).astype(
            np.float32
        )
        return result


class CkksEncryptedSearch:
    """Documents encrypted for homomorphic search, as the index store holds them.

    :meth:`protect` encrypts the vectors with the gateway's public context exactly as a node
    does, then reads, for each document and coordinate, the stored ciphertext word at the
    document's slot of the diagonal that carries that coordinate (first polynomial, first
    RNS prime, centred and scaled to [-1, 1)): the only per-document numbers a store
    without the key has. :meth:`scores` runs the real encrypted search and decrypts.

    Args:
        dimension: Vector width.
        key: The gateway's key (a fresh one if ``None``).
    """

    def __init__(self, dimension: int, *, key: CkksSearchKey | None = None) -> None:
        self.key = key if key is not None else CkksSearchKey.generate(dimension=dimension)
        self.encryptor = CkksDocumentEncryptor(self.key.public_context(), dimension=dimension)
        self.layout = self.encryptor.layout

    @property
    def name(self) -> str:
        """Table label."""
        return "ckks search"

    def protect(self, vectors: np.ndarray) -> NDArray[np.float32]:
        """The attacker's per-document reading of the stored ciphertexts."""
        array = np.asarray(vectors, dtype=np.float64)
        d, g, slots = self.layout.dimension, self.layout.baby, self.layout.slots
        view = np.zeros(array.shape, dtype=np.float64)
        start = 0
        for block in self.encryptor.encrypt(array):
            rows = np.arange(block.count)
            for (a, b), diagonal in zip(self.layout.diagonals(), block.diagonals, strict=True):
                words = ciphertext_words(self.encryptor.public_context, diagonal)
                view[start + rows, (rows + a * g + b) % d] = words[(rows + a * g) % slots]
            start += block.count
        view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), _EPS)
        result: NDArray[np.float32] = view.astype(np.float32)
        return result

    def scores(
        self,
        queries: np.ndarray,
        documents: np.ndarray,
        *,
        progress: Callable[[int, int], None] | None = None,
        more: Callable[[int], bool] | None = None,
    ) -> NDArray[np.float64]:
        """``(n_queries, n_documents)`` inner products computed under encryption.

        ``progress`` is called as ``progress(done, total)`` after each query; ``more`` (a
        :meth:`embedding_core.time_share.TimeShare.more`) before each with the number done,
        and scoring stops at its first no: the rows are those of the first queries scored.
        """
        scorer = CkksInnerProductScorer(
            self.key.evaluation_context(), dimension=self.layout.dimension
        )
        for block in self.encryptor.encrypt(documents):
            scorer.add_block(block)
        rows: list[NDArray[np.float64]] = []
        for q in np.asarray(queries, dtype=np.float64):
            if more is not None and not more(len(rows)):
                break
            rows.append(
                self.key.decrypt_scores(scorer.score(self.key.encrypt_query(q)), scorer.counts)
            )
            if progress is not None:
                progress(len(rows), len(queries))
        logger.info("ckks-search: scored %d queries under encryption", len(rows))
        return np.vstack(rows) if rows else np.zeros((0, len(documents)))
