"""The score-reconstruction row against a real gateway process with the default policy.

A partner key issued with the gateway's defaults plays the attacker: its vector probes
must be refused (no vector grant), its text probes answered with ranks only, and the row
must count exactly what was answered; the control (exact scores, vector probes) must
rebuild the same documents, and the policy must judge both keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attacks.base import AttackReport
from audit.score_reconstruction_evidence import (
    KINDS,
    ProbeSetup,
    control_report,
    probe_gateway,
    rows,
)
from embedding_core import EmbeddingCache, Encoder
from embedding_core.data import load_beir, load_stsb
from index_client.vector_space import VectorSpace
from policies import (
    EVIDENCE_SCORE_RECONSTRUCTION_CONTROL,
    EVIDENCE_SCORE_RECONSTRUCTION_COSINE,
    QUERY_CHECK_IDS,
    evaluate_audit,
    load_default_policy,
)
from secure_index.service.credentials import DEFAULT_TOP_K_CAP

DOCUMENTS, PROBES, CKKS_PROBES = 120, 150, 12
CONTROL_PROBES = 800  # beyond the 2 x 384 basis vectors: every coordinate is measured


@pytest.fixture(scope="module")
def setup(shared_data_dir: Path, embedding_cache_dir: Path) -> ProbeSetup:
    encoder, cache = Encoder.load(), EmbeddingCache(embedding_cache_dir)
    test = load_beir(shared_data_dir / "scifact", split="test")
    pick = np.sort(np.random.default_rng(3).choice(len(test.corpus_ids), DOCUMENTS, replace=False))
    corpus = cache.get_or_encode(encoder, [test.corpus_texts[i] for i in pick], show_progress=False)
    texts = sorted({p.sentence1.strip() for p in load_stsb(shared_data_dir / "stsb", split="dev")})[
        :1000
    ]
    return ProbeSetup(
        doc_ids=[f"doc-{i}" for i in pick],
        documents=np.asarray(corpus, dtype=np.float32),
        public_texts=texts,
        public_vectors=cache.get_or_encode(encoder, texts, show_progress=False),
        probes={"at-rest": PROBES, "dcpe": PROBES, "ckks": CKKS_PROBES},
        space=VectorSpace.of(encoder),  # the gateway embeds text probes in the same space
    )


@pytest.fixture(scope="module")
def probed(setup: ProbeSetup) -> list[AttackReport]:
    progress: list[str] = []
    reports = probe_gateway(
        setup, adapter=None, model=None, dcpe_keyring=None, ckks_key=None,
        progress=progress.append,
    )  # fmt: skip
    assert any("default partner policy" in line for line in progress)
    return reports


def test_a_default_key_is_refused_vectors_and_answered_texts_with_ranks(
    probed: list[AttackReport],
) -> None:
    assert [r.details["collection_kind"] for r in probed] == list(KINDS)
    for report in probed:
        policy = report.details["partner_policy"]
        assert policy["vector_queries"] is False
        assert policy["score_release"] == "rank"
        assert [r["status"] for r in report.details["refusals"]] == [403]
        assert report.details["answered_by_kind"] == {"text": report.metrics["probes_answered"]}
        assert report.details["estimator"] == "ranks"
    at_rest = probed[0].metrics
    assert at_rest["documents"] == DOCUMENTS
    assert at_rest["probes_answered"] == PROBES - 1  # the refused vector probe counts as sent
    assert -1.0 <= at_rest["mean_cosine"] <= 1.0


def test_the_attacker_asks_for_the_largest_k_its_key_allows(probed: list[AttackReport]) -> None:
    for report in probed:
        cap = report.details["partner_policy"]["top_k_cap"]
        assert cap == DEFAULT_TOP_K_CAP
        assert report.details["top_k"] == cap  # read from the one 403 that refused k=1000
        assert report.details["top_k_refusals"] == 1
        assert report.details["rate_limit"] == "lifted"


def test_the_control_rebuilds_the_same_documents_from_exact_scores(setup: ProbeSetup) -> None:
    report = control_report(setup, probes=CONTROL_PROBES)
    assert report.metrics["mean_cosine"] > 0.99
    assert report.metrics["probes_answered"] == CONTROL_PROBES


def test_the_policy_judges_the_row_against_its_threshold(
    probed: list[AttackReport], setup: ProbeSetup
) -> None:
    # Prepare
    control = control_report(setup, probes=CONTROL_PROBES)
    worst = max(r.metrics["mean_cosine"] for r in probed)
    evidence = {
        EVIDENCE_SCORE_RECONSTRUCTION_COSINE: worst,
        EVIDENCE_SCORE_RECONSTRUCTION_CONTROL: control.metrics["mean_cosine"],
    }
    policy = load_default_policy().policy
    # Execute
    checks = {c.id: c for c in evaluate_audit(policy, evidence) if c.id in QUERY_CHECK_IDS}
    # Assert
    assert set(checks) == set(QUERY_CHECK_IDS)
    expected = "pass" if worst <= policy.audit.max_score_reconstruction_cosine else "fail"
    assert checks["score_reconstruction"].status == expected
    assert checks["score_reconstruction_control"].status == "pass"
    assert len(rows([*probed, control])) == len(KINDS) + 1
