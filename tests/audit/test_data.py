"""The audit's data: its smaller SciFact corpus keeps every judged document, and
WordNet's glosses join the attacker's public text when asked for."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from attacks.wordnet_glosses import DATA_FILES
from audit.data import corpus_subset, load_audit_data
from embedding_core import EmbeddingCache, Encoder
from embedding_core.data.beir import BeirDataset
from tests.attacks.wordnet_files import write_wordnet


def _dataset(split: str, qrels: dict[str, dict[str, int]]) -> BeirDataset:
    ids = [f"d{i}" for i in range(100)]
    return BeirDataset(
        name="toy",
        corpus_ids=ids,
        corpus_texts=[f"text {i}" for i in ids],
        queries={q: q for q in qrels},
        qrels=qrels,
        split=split,
    )


def test_subset_keeps_judged_documents_and_fills_to_size_in_corpus_order() -> None:
    # Prepare
    test = _dataset("test", {"q1": {"d5": 1}, "q2": {"d90": 1}})
    train = _dataset("train", {"q3": {"d42": 1, "d7": 1}})
    # Execute
    subset = corpus_subset(test, train, 20, seed=0)
    again = corpus_subset(test, train, 20, seed=0)
    # Assert
    assert len(subset.corpus_ids) == 20
    assert {"d5", "d90", "d42", "d7"} <= set(subset.corpus_ids)
    assert subset.corpus_ids == sorted(subset.corpus_ids, key=lambda d: int(d[1:]))
    assert subset.corpus_texts == [f"text {d}" for d in subset.corpus_ids]
    assert subset.qrels == test.qrels
    assert again.corpus_ids == subset.corpus_ids


def test_a_size_below_the_judged_count_keeps_only_judged_documents() -> None:
    test = _dataset("test", {"q1": {"d5": 1, "d6": 1}})
    train = _dataset("train", {"q3": {"d42": 1}})
    assert corpus_subset(test, train, 1, seed=0).corpus_ids == ["d5", "d6", "d42"]


@pytest.mark.slow  # minutes on 2 cores: `make test-all` runs it (benchmarks/RESULTS.md, CI row)
def test_wordnet_glosses_are_loaded_embedded_and_named_among_the_sources(
    tmp_path: Path, shared_data_dir: Path, embedding_cache_dir: Path
) -> None:
    # Prepare
    wordnet = write_wordnet(tmp_path / "wordnet")
    encoder = Encoder.load()
    # Execute
    data = load_audit_data(
        shared_data_dir,
        encoder,
        cache=EmbeddingCache(embedding_cache_dir),
        bank_targets=10,
        claim_targets=5,
        public_per_source=200,
        corpus_documents=1500,
        wordnet=wordnet,
    )
    # Assert: five gloss texts, each embedded as the encoder embeds it, and hashed.
    assert len(data.gloss_texts) == 5
    assert data.gloss_texts[0].startswith("hematopoiesis, haematopoiesis, hemopoiesis: ")
    np.testing.assert_allclose(
        data.gloss_vectors, encoder.encode(data.gloss_texts), rtol=0, atol=1e-5
    )
    digest = hashlib.sha256(b"".join((wordnet / name).read_bytes() for name in DATA_FILES))
    source = data.sources[-1]
    assert source["name"].startswith("wordnet 3.0 glosses")
    assert (source["records"], source["sha256"]) == (5, digest.hexdigest())
    assert len(data.public_texts) == 400  # the glosses only feed the word map
