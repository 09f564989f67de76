"""What the audit attacks with and what it attacks: public auxiliary data and private targets.

The attacker's public data is STS-B (all splits' sentences) plus BANKING77's *train*
split (public in-domain text); the private targets are BANKING77 *test* queries (with
their intent, the sensitive attribute) and SciFact *test* claims. SciFact train claims are
not public data here: a third of the test claims have a negated twin among them, which
would turn nearest-neighbour lookup into near-copying. SciFact's test split and corpus
measure retrieval utility; its train (query, document) pairs are the membership pool.
WordNet's glosses (public dictionary sentences, :mod:`attacks.wordnet_glosses`), when
asked for, teach the inversion attacker's word map the vocabulary the other public
sources lack. Every file read is hashed, so the report names the exact data it covered.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attacks.wordnet_glosses import DATA_FILES as WORDNET_FILES
from attacks.wordnet_glosses import wordnet_glosses
from dp_training import InteractionSet
from embedding_core import EmbeddingCache, Encoder
from embedding_core.data import BeirDataset, load_beir, load_stsb, resolve_dataset_dir
from embedding_core.errors import DatasetNotFoundError
from embedding_core.evaluation.retrieval import RetrievalVectors, embed_retrieval

__all__ = ["AuditData", "corpus_subset", "load_audit_data", "owning_nodes"]

logger = logging.getLogger(__name__)

Matrix = NDArray[np.float32]
STSB_SPLITS = ("train", "dev", "test")
BANKING = "banking77"
BANKING_TEXT, BANKING_LABEL = "text", "category"
DOCUMENTS_FILE = "documents.jsonl"
STSB_SOURCE, BANKING_TRAIN_SOURCE = "stsb", "banking77 train"


def _sha256(*paths: Path) -> str:
    """SHA-256 of the files' bytes, concatenated in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _banking(root: Path, split: str) -> tuple[list[str], list[str], Path]:
    path = root / f"{split}.csv"
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path} does not exist",
            expected=f"BANKING77's {split}.csv (columns text, category)",
            fix="point --data-dir at the folder that holds banking77/ (e.g. ../shared/data)",
        )
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r[BANKING_TEXT] for r in rows], [r[BANKING_LABEL] for r in rows], path


@dataclass
class AuditData:
    """Texts, labels and base-encoder vectors of every set the audit uses."""

    public_texts: list[str]
    public_vectors: Matrix
    intent_train_vectors: Matrix
    intent_train_labels: list[str]
    bank_texts: list[str]
    bank_labels: list[str]
    bank_vectors: Matrix
    claim_texts: list[str]
    claim_vectors: Matrix
    scifact_test: BeirDataset
    retrieval: RetrievalVectors
    membership_pool: InteractionSet
    sources: list[dict[str, Any]]
    gloss_texts: list[str] = field(default_factory=list)
    gloss_vectors: Matrix = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    @property
    def public_sources(self) -> dict[str, Matrix]:
        """The attacker's public embeddings by source (STS-B, BANKING77 train)."""
        stsb = len(self.public_vectors) - len(self.intent_train_vectors)
        return {
            STSB_SOURCE: self.public_vectors[:stsb],
            BANKING_TRAIN_SOURCE: self.intent_train_vectors,
        }


def owning_nodes(members: Path, corpus_ids: Sequence[str]) -> dict[int, str]:
    """Corpus row -> owning node, from each ``members/<node>/documents.jsonl`` (ids only).

    Raises:
        DatasetNotFoundError: ``members`` holds no node folder with a documents file.
    """
    row = {doc_id: i for i, doc_id in enumerate(corpus_ids)}
    owners: dict[int, str] = {}
    for path in sorted(Path(members).glob(f"*/{DOCUMENTS_FILE}")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                doc_id = str(json.loads(line)["id"]) if line.strip() else None
                if doc_id in row:
                    owners[row[doc_id]] = path.parent.name
    if len(set(owners.values())) < 2:
        raise DatasetNotFoundError(
            f"{members} holds fewer than two member folders with {DOCUMENTS_FILE}",
            expected=f"<members>/<node>/{DOCUMENTS_FILE} for each node (as the demo writes)",
            fix="point --members at the folder that holds the node folders, e.g. out/demo/members",
        )
    return owners


def _sample(count: int, limit: int | None, seed: int) -> NDArray[np.int64]:
    if limit is None or limit >= count:
        return np.arange(count, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def corpus_subset(test: BeirDataset, train: BeirDataset, size: int, seed: int) -> BeirDataset:
    """``test`` restricted to its judged documents, train's, and a sample of the rest."""
    judged = {d for split in (test, train) for docs in split.qrels.values() for d in docs}
    rest = [i for i, doc_id in enumerate(test.corpus_ids) if doc_id not in judged]
    extra = {rest[i] for i in _sample(len(rest), max(size - len(judged), 0), seed + 4)}
    keep = [i for i, d in enumerate(test.corpus_ids) if d in judged or i in extra]
    return replace(
        test,
        corpus_ids=[test.corpus_ids[i] for i in keep],
        corpus_texts=[test.corpus_texts[i] for i in keep],
    )


def _membership_pool(
    scifact: Path, test: BeirDataset, retrieval: RetrievalVectors, embed: Any
) -> tuple[InteractionSet, int]:
    train = load_beir(scifact, split="train")
    doc_row = {doc_id: row for row, doc_id in enumerate(test.corpus_ids)}
    query_ids = sorted(train.queries)
    vectors = embed([train.queries[q] for q in query_ids])
    query_row = {qid: row for row, qid in enumerate(query_ids)}
    pairs = [
        (query_row[qid], doc_row[doc_id])
        for qid in query_ids
        for doc_id, score in sorted(train.qrels.get(qid, {}).items())
        if score > 0 and doc_id in doc_row
    ]
    rows = np.array([q for q, _ in pairs], dtype=np.int64)
    pool = InteractionSet(
        query_vectors=np.ascontiguousarray(vectors[rows]),
        positive_index=np.array([d for _, d in pairs], dtype=np.int64),
        doc_vectors=retrieval.documents,
        # The membership game's targets are records, drawn in or out one by one, so its
        # models clip and sample one record per unit: the unit its bound is stated for.
        unit_ids=np.arange(len(pairs), dtype=np.int64),
    )
    return pool, len(pairs)


def load_audit_data(
    data_dir: Path | None,
    encoder: Encoder,
    *,
    cache: EmbeddingCache | None,
    bank_targets: int | None,
    claim_targets: int | None,
    public_per_source: int | None = None,
    corpus_documents: int | None = None,
    wordnet: Path | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> AuditData:
    """Load and embed every set the audit uses (through ``cache`` when given).

    Args:
        data_dir: The shared data folder (``stsb/``, ``banking77/``, ``scifact/``).
        encoder: The audited base encoder.
        cache: Embedding cache; ``None`` encodes everything.
        bank_targets: BANKING77 test queries attacked (a seeded sample; ``None`` = all).
        claim_targets: SciFact test claims attacked (likewise).
        public_per_source: Use a seeded sample of this many texts of each public source
            (STS-B, BANKING77 train); ``None`` = all (a smaller, weaker attacker).
        corpus_documents: Measure retrieval utility on a SciFact corpus of this many
            documents: every document judged relevant (test and train) plus a seeded
            sample of the rest; ``None`` = the whole corpus (the published setting).
            Smaller corpora score higher nDCG: for smoke runs, not for the record.
        wordnet: A WordNet database folder whose glosses join the attacker's public
            text for its word map (:func:`attacks.wordnet_glosses.wordnet_glosses`);
            ``None`` = none. About 160,000 short texts: several minutes to embed once.
        seed: Seeds the samples.
        progress: Called with a line before each set is embedded (counts, never texts);
            the encoder shows each encode's own progress.
    """
    started = time.perf_counter()

    def say(line: str) -> None:
        if progress is not None:
            progress(line)
        else:
            logger.info("audit: %s", line)

    def embed(texts: Sequence[str], what: str) -> Matrix:
        say(f"embedding {what} ({len(texts)} texts)")
        step = f"audit: embed {what}"
        if cache is not None:
            return cache.get_or_encode(encoder, list(texts), what=step)
        return encoder.encode(list(texts), what=step)

    stsb_root = resolve_dataset_dir(data_dir, "stsb", marker="stsb-test.jsonl")
    bank_root = resolve_dataset_dir(data_dir, BANKING, marker="test.csv")
    scifact = resolve_dataset_dir(data_dir, "scifact", marker="corpus.jsonl")
    seen: dict[str, None] = {}
    for split in STSB_SPLITS:
        for pair in load_stsb(stsb_root, split=split):
            for sentence in (pair.sentence1, pair.sentence2):
                seen.setdefault(sentence.strip(), None)
    stsb = list(seen)
    stsb = [stsb[i] for i in _sample(len(stsb), public_per_source, seed + 2)]
    bank_train, train_labels, train_path = _banking(bank_root, "train")
    keep = _sample(len(bank_train), public_per_source, seed + 3)
    bank_train, train_labels = [bank_train[i] for i in keep], [train_labels[i] for i in keep]
    bank_test, test_labels, test_path = _banking(bank_root, "test")
    pick = _sample(len(bank_test), bank_targets, seed)
    bank_texts = [bank_test[i] for i in pick]
    bank_labels = [test_labels[i] for i in pick]
    test = load_beir(scifact, split="test")
    if corpus_documents is not None:
        test = corpus_subset(test, load_beir(scifact, split="train"), corpus_documents, seed)
    claims = [test.queries[q] for q in test.qrels if q in test.queries]
    claim_texts = [claims[i] for i in _sample(len(claims), claim_targets, seed + 1)]
    v_stsb = embed(stsb, "STS-B sentences (public)")
    v_train = embed(bank_train, "BANKING77 train (public)")
    say(f"embedding the SciFact corpus ({len(test.corpus_ids)} documents) and its claims")
    retrieval = embed_retrieval(encoder, test, cache=cache)
    pool, pairs = _membership_pool(
        scifact, test, retrieval, lambda texts: embed(texts, "SciFact train claims (pool)")
    )
    sources = [
        {
            "name": "stsb (public auxiliary)",
            "records": len(stsb),
            "sha256": _sha256(stsb_root / "stsb-train.jsonl")
            if (stsb_root / "stsb-train.jsonl").exists()
            else None,
        },
        {
            "name": "banking77 train (public auxiliary)",
            "records": len(bank_train),
            "sha256": _sha256(train_path),
        },
        {
            "name": "banking77 test (private targets)",
            "records": len(bank_texts),
            "sha256": _sha256(test_path),
        },
        {
            "name": "scifact test claims (private targets)",
            "records": len(claim_texts),
            "sha256": _sha256(scifact / "queries.jsonl"),
        },
        {
            "name": "scifact corpus (retrieval utility)"
            + ("" if corpus_documents is None else ", judged documents + sample"),
            "records": len(test.corpus_ids),
            "sha256": _sha256(scifact / "corpus.jsonl"),
        },
        {
            "name": "scifact train pairs (membership pool)",
            "records": pairs,
            "sha256": _sha256(scifact / "qrels" / "train.tsv"),
        },
    ]
    glosses: list[str] = []
    if wordnet is not None:
        glosses = wordnet_glosses(wordnet)
        sources.append(
            {
                "name": "wordnet 3.0 glosses (public auxiliary, word map)",
                "records": len(glosses),
                "sha256": _sha256(*(Path(wordnet) / name for name in WORDNET_FILES)),
            }
        )
    data = AuditData(
        public_texts=stsb + bank_train,
        public_vectors=np.vstack([v_stsb, v_train]),
        intent_train_vectors=v_train,
        intent_train_labels=train_labels,
        bank_texts=bank_texts,
        bank_labels=bank_labels,
        bank_vectors=embed(bank_texts, "BANKING77 test (targets)"),
        claim_texts=claim_texts,
        claim_vectors=embed(claim_texts, "SciFact test claims (targets)"),
        scifact_test=test,
        retrieval=retrieval,
        membership_pool=pool,
        sources=sources,
        gloss_texts=glosses,
        gloss_vectors=(
            embed(glosses, "WordNet glosses (public)") if glosses else np.zeros((0, 0), np.float32)
        ),
    )
    logger.info(
        "audit: loaded data (%d public texts, %d + %d targets, %d pool records) in %.1f s",
        len(data.public_texts),
        len(bank_texts),
        len(claim_texts),
        pairs,
        time.perf_counter() - started,
    )
    return data
