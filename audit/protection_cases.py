"""The protections the audit attacks, each with the retrieval utility it leaves.

A :class:`ProtectionCase` is what an attacker sees of a target embedding under one
protection (``attacker_view``) plus SciFact test nDCG@10 with that protection applied as
deployed: noise on documents and queries; DCPE on both with exact L2 search (what the
index does); the query adapter on queries only. The *deployed* protections are the index's
DCPE key when a keyring is given and its CKKS search when the gateway's CKKS key is given;
with neither, encryption at rest only, which leaves the running index process holding raw
vectors (so the raw case is the deployed one).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attacks.distribution_alignment import DistributionAlignmentAttacker
from attacks.known_plaintext_map import LinearMapAttacker
from attacks.protections import CkksEncryptedSearch, DcpeProtection, GaussianNoise, KeyedRotation
from audit.config import AuditConfig
from audit.data import AuditData
from crypto.ckks_search_key import CkksSearchKey, load_ckks_key
from crypto.dcpe import DcpeKey
from crypto.dcpe_keys import DcpeKeyring
from embedding_core.adapter import Adapter
from embedding_core.evaluation.metrics import mean_metrics
from embedding_core.evaluation.search import exact_top_k
from embedding_core.progress import Progress
from embedding_core.time_share import TimeShare

__all__ = [
    "CKKS_UTILITY_FLOOR",
    "DeployedProtection",
    "ProtectionCase",
    "View",
    "alignment_view",
    "ckks_utility",
    "known_plaintext_view",
    "protection_cases",
    "scifact_ndcg10",
    "scored_ndcg10",
    "stored_view",
]

logger = logging.getLogger(__name__)

NDCG = "ndcg@10"
DEPTH = 100
DEFAULT_DCPE_BETA = 1.0
CKKS_UTILITY_FLOOR = 30  # test claims the CKKS utility always scores under a time share
View = Callable[[np.ndarray], NDArray[np.float32]]


@dataclass(frozen=True)
class ProtectionCase:
    """One protection: the attacker's view of a vector, its utility and its threat."""

    label: str
    attacker_view: View
    ndcg10: float
    threat: str
    optimisation: bool = False
    deployed: bool = False
    # Test claims the utility was measured on when a time share sized it (None: all): the
    # row's nDCG@10 is raw's on every claim less the drop measured on those claims.
    ndcg_claims: int | None = None


@dataclass(frozen=True)
class DeployedProtection:
    """The protections the consortium's index uses: its DCPE key, its CKKS search key."""

    key: DcpeKey | None = None
    keyring_path: Path | None = None
    ckks_key: CkksSearchKey | None = None
    ckks_key_path: Path | None = None

    @classmethod
    def from_files(cls, keyring: Path | None, ckks_key: Path | None) -> DeployedProtection:
        """The deployed keys from their files (either may be ``None``)."""
        return cls(
            key=DcpeKeyring.load(keyring).current() if keyring is not None else None,
            keyring_path=keyring,
            ckks_key=load_ckks_key(ckks_key) if ckks_key is not None else None,
            ckks_key_path=ckks_key,
        )

    def describe(self, index: Path | None) -> dict[str, Any]:
        """The report's index section (never the key material)."""
        collections: list[dict[str, Any]] = []
        if self.key is None and self.ckks_key is None:
            collections = [{"name": "all collections", "protection": "at-rest", "beta": None}]
        if self.key is not None:
            collections.append(
                {
                    "name": "DCPE collections (consortium keyring)",
                    "protection": "dcpe",
                    "beta": self.key.beta,
                    "key_id": self.key.key_id,
                }
            )
        if self.ckks_key is not None:
            collections.append(
                {
                    "name": "CKKS collections (gateway's search key)",
                    "protection": "ckks",
                    "beta": None,
                }
            )
        return {
            "path": str(index) if index is not None else None,
            "keyring": str(self.keyring_path) if self.keyring_path is not None else None,
            "ckks_key": str(self.ckks_key_path) if self.ckks_key_path is not None else None,
            "collections": collections,
        }


def scifact_ndcg10(
    queries: np.ndarray, documents: np.ndarray, data: AuditData, *, l2: bool
) -> float:
    """SciFact test nDCG@10 ranking by inner product, or by L2 distance when ``l2``."""
    q = np.asarray(queries, dtype=np.float64)
    d = np.asarray(documents, dtype=np.float64)
    if l2:  # rank by -||q - d||^2 = 2 q.d - ||d||^2 (+ a constant per query)
        return scored_ndcg10(2.0 * (q @ d.T) - (d * d).sum(axis=1)[None, :], data)
    top, _ = exact_top_k(q.astype(np.float32), d.astype(np.float32), DEPTH)
    return _ranked_ndcg10(top, data)


def scored_ndcg10(
    scores: np.ndarray, data: AuditData, *, claims: Sequence[int] | None = None
) -> float:
    """SciFact test nDCG@10 of a ``(queries, documents)`` score matrix (higher first).

    ``claims``: the test claims (their rows in the audit's queries) the score rows belong
    to, in order; ``None``: every claim.
    """
    return _ranked_ndcg10(np.argsort(-scores, axis=1, kind="stable")[:, :DEPTH], data, claims)


def _ranked_ndcg10(top: np.ndarray, data: AuditData, claims: Sequence[int] | None = None) -> float:
    ids = data.retrieval.query_ids
    if claims is not None:
        ids = [ids[i] for i in claims]
    corpus = data.scifact_test.corpus_ids
    rankings = {qid: [corpus[j] for j in row] for qid, row in zip(ids, top, strict=True)}
    qrels = {qid: data.scifact_test.qrels[qid] for qid in ids if qid in data.scifact_test.qrels}
    return float(mean_metrics(rankings, qrels)[NDCG])


def _as_f32(vectors: np.ndarray) -> NDArray[np.float32]:
    return np.asarray(vectors, dtype=np.float32)


def _batch_key(vectors: np.ndarray) -> str:
    """A batch's identity for the views that keep work per batch: its bytes and shape."""
    array = np.ascontiguousarray(vectors)
    return f"{hashlib.sha256(array.tobytes()).hexdigest()}:{array.dtype}:{array.shape}"


def known_plaintext_view(protect: View, plain: np.ndarray) -> View:
    """What an attacker holding ``protect(plain)`` for the known ``plain`` recovers."""
    attacker = LinearMapAttacker().fit(protect(plain), plain)

    def recover(vectors: np.ndarray) -> NDArray[np.float32]:
        return attacker.recover(protect(vectors))

    return recover


def alignment_view(protect: View, public: dict[str, np.ndarray], seed: int) -> View:
    """What a ciphertext-only attacker recovers by aligning a batch with public embeddings.

    The attacker holds the whole batch of protected vectors (an index holds its
    collection), fits the map on it and inverts the same batch. Fits are kept per batch
    (keyed by a digest of its bytes): the audit's attacks ask for the same batch again.
    """
    fitted: dict[str, DistributionAlignmentAttacker] = {}

    def recover(vectors: np.ndarray) -> NDArray[np.float32]:
        protected = protect(vectors)
        key = _batch_key(protected)
        if key not in fitted:
            fitted[key] = DistributionAlignmentAttacker(seed=seed).fit(protected, public)
        return fitted[key].recover(protected)

    return recover


def ckks_utility(
    ckks: CkksEncryptedSearch, data: AuditData, config: AuditConfig
) -> tuple[float, int | None]:
    """SciFact test nDCG@10 of search under encryption, and the claims it was measured on.

    Without a time share every claim is scored (``None``: all). With
    ``config.ckks_seconds`` the claims go in a seeded random order while half of that time
    allows (at least ``CKKS_UTILITY_FLOOR``), and the value is raw's nDCG@10 on every claim
    less the drop measured on the sample (a paired estimate: the sample's own mean would
    move with which claims it drew).
    """
    queries, docs = data.retrieval.queries, data.retrieval.documents
    what = f"audit: CKKS search under encryption, {len(docs)} documents"
    order = np.random.default_rng(config.seed).permutation(len(queries))
    share = None
    if config.ckks_seconds is not None:
        share = TimeShare(config.ckks_seconds / 2, floor=min(CKKS_UTILITY_FLOOR, len(queries)))
    with Progress(len(queries), what=what, unit="queries") as progress:
        scores = ckks.scores(
            queries[order],
            docs,
            progress=lambda done, _: progress.advance(done - progress.done),
            more=share.more if share is not None else None,
        )
    scored = [int(i) for i in order[: len(scores)]]
    ndcg = scored_ndcg10(scores, data, claims=scored)
    if len(scored) == len(queries):
        return ndcg, None
    exact = np.asarray(queries, np.float64) @ np.asarray(docs, np.float64).T
    drop = scored_ndcg10(exact[scored], data, claims=scored) - ndcg
    logger.info(
        "audit: CKKS utility on %d of %d claims (%s): drop %.4f", len(scored), len(queries),
        share, drop,
    )  # fmt: skip
    return scored_ndcg10(exact, data) - drop, len(scored)


def stored_view(protect: View) -> View:
    """``protect`` as a store holds it: each batch protected once, then read again.

    CKKS encryption is randomised, so protecting the same documents twice gives two sets
    of ciphertexts where a store keeps one: every attacker of the store (ciphertext-only,
    known-plaintext) must read the same ones. Batches are keyed by a digest of their bytes.
    """
    kept: dict[str, NDArray[np.float32]] = {}

    def view(vectors: np.ndarray) -> NDArray[np.float32]:
        key = _batch_key(np.asarray(vectors, dtype=np.float64))
        if key not in kept:
            kept[key] = protect(vectors)
        return kept[key]

    return view


def _ckks_cases(
    data: AuditData, plain: np.ndarray, deployed: DeployedProtection, config: AuditConfig
) -> list[ProtectionCase]:
    """Encrypted search: the store holds CKKS ciphertexts and scores encrypted queries."""
    docs = data.retrieval.documents
    is_live = deployed.ckks_key is not None
    ckks = CkksEncryptedSearch(docs.shape[1], key=deployed.ckks_key)
    ndcg, claims = ckks_utility(ckks, data, config)
    stored = stored_view(ckks.protect)  # both attackers read the same stored ciphertexts
    origin = "the gateway's key" if is_live else "a fresh key"
    suffix = "" if is_live else " (not deployed)"
    threat = (
        f"holds the index store's CKKS ciphertexts (under {origin}) of every document, "
        "encrypted queries, Galois and relinearisation keys, no decrypting key; reads the "
        "ciphertext words at each document's slots"
    )
    return [
        ProtectionCase(
            f"{ckks.name} ciphertext-only{suffix}",
            stored,
            ndcg,
            threat,
            optimisation=True,
            deployed=is_live,
            ndcg_claims=claims,
        ),
        ProtectionCase(
            f"{ckks.name} known-plaintext n={config.kpa_pairs}{suffix}",
            known_plaintext_view(stored, plain),
            ndcg,
            f"{threat}; also holds {config.kpa_pairs} known (plaintext, ciphertext) pairs and "
            "fits a linear map back",
            deployed=is_live,
            ndcg_claims=claims,
        ),
    ]


def protection_cases(
    data: AuditData, adapter: Adapter | None, deployed: DeployedProtection, config: AuditConfig
) -> list[ProtectionCase]:
    """Raw, the noise sweep, DCPE (ciphertext-only and known-plaintext), the adapter."""
    queries, docs = data.retrieval.queries, data.retrieval.documents
    cases = [
        ProtectionCase(
            "raw",
            _as_f32,
            scifact_ndcg10(queries, docs, data, l2=False),
            "no protection (or encryption at rest only, seen by the index process)",
            optimisation=True,
            deployed=deployed.key is None and deployed.ckks_key is None,
        )
    ]
    for sigma in config.noise_sigmas:
        noise = GaussianNoise(sigma, seed=config.seed + 1)
        cases.append(
            ProtectionCase(
                noise.name,
                noise.protect,
                scifact_ndcg10(noise.protect(queries), noise.protect(docs), data, l2=False),
                f"vectors carry renormalised Gaussian noise (sigma {sigma:g}); static attacker",
            )
        )
    is_live = deployed.key is not None
    dcpe = DcpeProtection(DEFAULT_DCPE_BETA, key=deployed.key)
    dcpe_ndcg = scifact_ndcg10(dcpe.protect(queries), dcpe.protect(docs), data, l2=True)
    origin = "the consortium's key" if is_live else "a fresh key (not deployed)"
    cases.append(
        ProtectionCase(
            f"{dcpe.name} ciphertext-only",
            dcpe.protect,
            dcpe_ndcg,
            f"holds DCPE ciphertexts under {origin} (e.g. a compromised index process)",
            optimisation=is_live,
            deployed=is_live,
        )
    )
    rng = np.random.default_rng(config.seed + config.kpa_pairs)
    known = rng.choice(len(data.public_vectors), size=config.kpa_pairs, replace=False)
    plain = data.public_vectors[known]
    cases.append(
        ProtectionCase(
            f"{dcpe.name} known-plaintext n={config.kpa_pairs}",
            known_plaintext_view(dcpe.protect, plain),
            dcpe_ndcg,
            f"holds DCPE ciphertexts under {origin} and {config.kpa_pairs} known "
            "(plaintext, ciphertext) pairs; fits a linear map back",
            optimisation=is_live,
            deployed=is_live,
        )
    )
    rotation = KeyedRotation(docs.shape[1])
    rotated_ndcg = scifact_ndcg10(rotation.protect(queries), rotation.protect(docs), data, l2=False)
    cases.append(
        ProtectionCase(
            "keyed rotation ciphertext-only (not deployed)",
            alignment_view(rotation.protect, data.public_sources, config.seed),
            rotated_ndcg,
            "holds a batch of vectors under a secret random rotation (keeps every inner "
            "product) and public embeddings (STS-B, BANKING77 train); undoes the rotation by "
            "aligning the two distributions (PCA start, CSLS-Procrustes refinement, Conneau "
            "et al. 2018), no known pairs",
            optimisation=True,
        )
    )
    cases.append(
        ProtectionCase(
            f"keyed rotation known-plaintext n={config.kpa_pairs} (not deployed)",
            known_plaintext_view(rotation.protect, plain),
            rotated_ndcg,
            f"holds rotated vectors and {config.kpa_pairs} known pairs; fits a linear map back",
        )
    )
    cases.extend(_ckks_cases(data, plain, deployed, config))
    if adapter is not None:
        eps = adapter.metadata.get("target_epsilon")
        label = f"dp adapter eps={eps:.4g}" if isinstance(eps, int | float) else "dp adapter"
        cases.append(
            ProtectionCase(
                f"{label} (query side)",
                lambda v: _as_f32(adapter.transform(_as_f32(v))),
                scifact_ndcg10(adapter.transform(queries), docs, data, l2=False),
                "sees query vectors after the released adapter; static attacker",
            )
        )
    logger.info("audit: %d protection cases", len(cases))
    return cases
