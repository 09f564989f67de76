"""The audit's attacker views of a protection, and the index section it reports."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest

from attacks.protections import CkksEncryptedSearch, KeyedRotation
from audit.config import AuditConfig
from audit.data import AuditData
from audit.protection_cases import (
    CKKS_UTILITY_FLOOR,
    DeployedProtection,
    alignment_view,
    ckks_utility,
    known_plaintext_view,
    scifact_ndcg10,
    scored_ndcg10,
    stored_view,
)
from crypto.dcpe import DcpeKey
from embedding_core.data import BeirDataset
from embedding_core.evaluation.retrieval import RetrievalVectors
from tests.attacks.point_clouds import DIM, mean_cosine, mixture

FITTED = "alignment: fitted on"


def test_alignment_view_fits_once_per_batch_and_recovers_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare
    rotation = KeyedRotation(DIM, key=b"v" * 16)
    view = alignment_view(rotation.protect, {"public": mixture(2000, seed=1)}, seed=0)
    batch, other = mixture(800, seed=2), mixture(700, seed=3)
    caplog.set_level(logging.INFO, logger="attacks.distribution_alignment")
    # Execute
    first, again = view(batch), view(batch)
    view(other)
    # Assert: one fit per distinct batch, the same answer for the same batch.
    fits = [r for r in caplog.records if r.getMessage().startswith(FITTED)]
    assert len(fits) == 2
    np.testing.assert_array_equal(first, again)
    assert mean_cosine(first, batch) > 0.95


def test_known_plaintext_view_undoes_a_keyed_rotation() -> None:
    # Prepare: more known pairs than dimensions pin a linear map down.
    rotation = KeyedRotation(DIM, key=b"k" * 16)
    known, targets = mixture(4 * DIM, seed=4), mixture(200, seed=5)
    # Execute
    view = known_plaintext_view(rotation.protect, known)
    # Assert
    assert mean_cosine(rotation.protect(targets), targets) < 0.3
    assert mean_cosine(view(targets), targets) > 0.99


def test_without_deployed_keys_the_index_section_says_encryption_at_rest_only() -> None:
    # Execute
    section = DeployedProtection().describe(None)
    # Assert
    assert section["collections"] == [
        {"name": "all collections", "protection": "at-rest", "beta": None}
    ]
    assert section["keyring"] is None
    assert section["ckks_key"] is None


def test_the_index_section_names_the_dcpe_key_but_never_its_secrets() -> None:
    # Prepare
    key = DcpeKey.generate(tenant="consortium", beta=2.0)
    # Execute
    section = DeployedProtection(key=key).describe(None)
    # Assert
    (collection,) = section["collections"]
    assert collection["protection"] == "dcpe"
    assert collection["beta"] == 2.0
    assert collection["key_id"] == key.key_id
    text = json.dumps(section)
    assert key.prf_key.hex() not in text
    assert repr(key.scaling_factor) not in text


def _retrieval_data(queries: int, documents: int) -> AuditData:
    """What the utility rows read of the audit data: query and corpus vectors, qrels."""
    rng = np.random.default_rng(21)
    docs = rng.standard_normal((documents, 16))
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    asked = docs[rng.integers(0, documents, queries)] + 0.6 * rng.standard_normal((queries, 16))
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    corpus_ids = [f"d{j}" for j in range(documents)]
    # Each claim judges its nearest document relevant, and every third a random one: the
    # claims' nDCG@10 differ, so a sample's mean is not the whole set's.
    nearest = np.argmax(asked @ docs.T, axis=1)
    qrels = {
        f"q{i}": {corpus_ids[int(rng.integers(documents)) if i % 3 == 0 else nearest[i]]: 1}
        for i in range(queries)
    }
    scifact = BeirDataset(
        name="tiny", corpus_ids=corpus_ids, corpus_texts=corpus_ids,
        queries={q: q for q in qrels}, qrels=qrels, split="test",
    )  # fmt: skip
    retrieval = RetrievalVectors(list(qrels), asked.astype(np.float32), docs.astype(np.float32))
    return cast(AuditData, SimpleNamespace(retrieval=retrieval, scifact_test=scifact))


def test_a_time_sized_ckks_utility_is_raw_less_the_drop_on_its_sample() -> None:
    # Prepare: 90 claims, a share too small for more than the floor of 30
    data = _retrieval_data(90, 120)
    ckks = CkksEncryptedSearch(16)
    raw = scifact_ndcg10(data.retrieval.queries, data.retrieval.documents, data, l2=False)
    # Execute
    sized, claims = ckks_utility(ckks, data, AuditConfig(ckks_seconds=1e-6))
    whole, every = ckks_utility(ckks, data, AuditConfig())
    # Assert: CKKS ranks as exact search does, so the drop is 0 on any sample and the sized
    # row equals raw on every claim (the sample's own mean would not: checked below)
    assert claims == CKKS_UTILITY_FLOOR
    assert every is None
    assert whole == pytest.approx(raw, abs=1e-9)
    assert sized == pytest.approx(raw, abs=1e-9)
    order = np.random.default_rng(0).permutation(90)[:CKKS_UTILITY_FLOOR]
    sample = scored_ndcg10(
        data.retrieval.queries[order] @ data.retrieval.documents.T,
        data,
        claims=[int(i) for i in order],
    )
    assert abs(sample - raw) > 0.01


def test_a_stored_view_encrypts_each_batch_once_so_every_attacker_reads_the_same() -> None:
    # Prepare: CKKS encryption is randomised; a store keeps one ciphertext per document
    ckks = CkksEncryptedSearch(16)
    rng = np.random.default_rng(3)
    batch, other = rng.standard_normal((2, 20, 16))
    batch /= np.linalg.norm(batch, axis=1, keepdims=True)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    view = stored_view(ckks.protect)
    # Execute
    first, again, different = view(batch), view(batch.copy()), view(other)
    # Assert: the same batch reads the same words; a fresh encryption of it would not
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(ckks.protect(batch), first)
    assert not np.array_equal(different, first)
