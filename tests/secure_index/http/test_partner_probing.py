"""A partner probing the gateway to rebuild stored vectors, over real HTTP.

The adversary holds a partner key and sends what rebuilds vectors from scores: the 384
basis vectors (each answer is one coordinate of every hit), random directions, or many
queries. The gateway must refuse vector queries without a grant, release ranks rather
than scores by default, suspend a key whose queries look like probing, and stop a key
at its query budget (also after a restart). Documents are real SciFact abstracts
embedded with all-MiniLM-L6-v2; the natural queries are SciFact claims.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from scipy.stats import norm

from crypto.dcpe_keys import DcpeKeyring
from embedding_core.data.beir import load_beir
from embedding_core.encoder import Encoder
from index_client import routes
from index_client.errors import PermissionDeniedError, RateLimitedError
from index_client.vector_space import VectorSpace
from secure_index.service.local_service import LocalIndexService, start_index_service
from secure_index.service.probe_detector import SPARSE_TRIGGER, WINDOW
from secure_index.service.settings import audit_path

DIM = 384
DOCS = 100
AT_REST, DCPE = "abstracts", "abstracts-dcpe"
BIG: dict[str, Any] = {"rate_per_minute": 1_000_000, "burst": 100_000}


@dataclass(frozen=True)
class Corpus:
    ids: list[str]
    vectors: np.ndarray  # (DOCS, DIM), unit rows
    claims: list[str]  # natural partner queries
    public_mean: np.ndarray  # mean of other SciFact abstracts: what anyone can compute


@pytest.fixture(scope="module")
def corpus(shared_data_dir: Path) -> Corpus:
    data = load_beir(shared_data_dir / "scifact", split="test")
    encoder = Encoder.load()
    vectors = np.asarray(encoder.encode(data.corpus_texts[:DOCS]), dtype=np.float64)
    public = np.asarray(encoder.encode(data.corpus_texts[DOCS : 2 * DOCS]), dtype=np.float64)
    return Corpus(
        ids=[f"doc-{i}" for i in range(DOCS)],
        vectors=vectors,
        claims=list(data.queries.values()),
        public_mean=public.mean(axis=0),
    )


def _start(root: Path, kek: bytes, *args: str, env: dict[str, str] | None = None) -> Any:
    return start_index_service(root, kek=kek, extra_args=args, env=env)


def _fill(service: LocalIndexService, corpus: Corpus, *, dcpe_keyring: Path | None) -> None:
    with service.admin_client() as admin:
        admin.create_collection(AT_REST, DIM)
        if dcpe_keyring is not None:
            admin.create_collection(DCPE, DIM, metric="l2", protection="dcpe")
        node = admin.issue_credential("node", "node-a", ["*"], **BIG)
    with service.gateway_client(node.token) as client:
        client.upsert_documents(
            AT_REST, corpus.ids, corpus.vectors, space=VectorSpace.of(Encoder.load())
        )


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, corpus: Corpus
) -> Iterator[LocalIndexService]:
    """A gateway with the defaults: text queries, suspension on probing."""
    root = tmp_path_factory.mktemp("guarded")
    keyring = root / "dcpe_keyring.json"
    DcpeKeyring.create(keyring, tenant="consortium", beta=1.0)
    service = _start(root / "svc", secrets.token_bytes(32), "--dcpe-key-file", str(keyring))
    try:
        _fill(service, corpus, dcpe_keyring=keyring)
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def lenient(
    tmp_path_factory: pytest.TempPathFactory, corpus: Corpus
) -> Iterator[LocalIndexService]:
    """A gateway whose operator turned suspension off (alerts are only audited)."""
    root = tmp_path_factory.mktemp("lenient")
    env = {"FEDEMBED_INDEX_SUSPEND_ON_PROBING": "false"}
    service = _start(root / "svc", secrets.token_bytes(32), "--no-text-queries", env=env)
    try:
        _fill(service, corpus, dcpe_keyring=None)
        yield service
    finally:
        service.stop()


def _partner(service: LocalIndexService, name: str, **policy: Any) -> tuple[str, str]:
    with service.admin_client() as admin:
        issued = admin.issue_credential("partner", name, ["*"], **{**BIG, **policy})
    return issued.key.key_id, issued.token


def _query(client: httpx.Client, collection: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(routes.QUERY.path(collection=collection), json=body)


def _records(service: LocalIndexService, key_id: str) -> list[tuple[str, str]]:
    lines = audit_path(service.data_dir).read_text().splitlines()
    return [
        (r["decision"], json.dumps(r["detail"], sort_keys=True))
        for r in map(json.loads, lines)
        if r["actor"] == key_id
    ]


def _probe(client: httpx.Client, probes: np.ndarray, k: int) -> list[httpx.Response]:
    return [_query(client, AT_REST, {"vector": p.tolist(), "k": k}) for p in probes]


def _rebuild(
    probes: np.ndarray, answers: list[httpx.Response], corpus: Corpus, *, from_ranks: bool
) -> np.ndarray:
    """The prober's least squares, per document over the answers that returned it.

    With scores it solves ``probes[J] @ d = scores``; with ranks only it replaces each
    rank by the expected normal order statistic of that rank (the best guess a rank
    gives). A document never returned gets no estimate (cosine 0). Returns the cosine
    of each estimate with the stored vector.
    """
    rows: dict[str, list[tuple[int, float]]] = {d: [] for d in corpus.ids}
    for j, answer in enumerate(answers):
        if answer.status_code != 200:
            continue
        for hit in answer.json()["results"]:
            value = (
                float(norm.ppf(1 - (hit["rank"] - 0.375) / (DOCS + 0.25)))
                if from_ranks
                else hit["score"]
            )
            rows[hit["doc_id"]].append((j, value))
    cosines = np.zeros(DOCS)
    for i, doc_id in enumerate(corpus.ids):
        if rows[doc_id]:
            picked = [j for j, _ in rows[doc_id]]
            values = np.array([v for _, v in rows[doc_id]])
            estimate = np.linalg.lstsq(probes[picked], values, rcond=None)[0]
            true = corpus.vectors[i]
            cosines[i] = estimate @ true / (np.linalg.norm(estimate) * np.linalg.norm(true))
    return cosines


def _signed_basis() -> np.ndarray:
    """The 2 x 384 probes +e_i and -e_i (the top and the bottom of every coordinate)."""
    eye = np.eye(DIM)
    return np.vstack([eye, -eye])


@pytest.mark.parametrize("collection", [AT_REST, DCPE])
def test_basis_vectors_without_a_grant_are_refused_and_audited(
    guarded: LocalIndexService, corpus: Corpus, collection: str
) -> None:
    # Prepare: a default partner key (no vector grant) with a budget of one query
    key_id, token = _partner(guarded, f"prober-{collection}", query_budget=1)
    # Execute: all 384 basis vectors, then one ordinary text query
    with guarded.client(token) as client:
        answers = _probe(client, np.eye(DIM), k=10)
        text = _query(client, AT_REST, {"text": corpus.claims[0], "k": 10})
    # Assert: every probe is a 403 with the standard body; nothing was spent or learned
    assert {a.status_code for a in answers} == {403}
    error = answers[0].json()["error"]
    assert error["problem"] == "your key may not send query vectors"
    assert "--allow-vector-queries" in error["fix"]
    assert error["expected"]
    assert text.status_code == 200, text.text  # the budget of one was not spent by denials
    hits = text.json()["results"]
    assert [h["rank"] for h in hits] == list(range(1, 11))
    assert all(h["score"] is None for h in hits)
    decisions = [d for d, _ in _records(guarded, key_id)]
    assert decisions.count("deny:vector-queries") == DIM
    assert decisions.count("allow") == 1


def test_a_granted_prober_is_suspended_before_it_learns_anything(
    guarded: LocalIndexService, corpus: Corpus
) -> None:
    # Prepare: a key with the vector grant and the default rank release
    key_id, token = _partner(guarded, "granted-prober", vector_queries=True)
    probes = _signed_basis()[:: 2 * DIM // (3 * WINDOW)]  # 96 of the 768 signed basis vectors
    # Execute: the probes, k=10
    with guarded.client(token) as client:
        answers = _probe(client, probes, k=10)
        text_after = _query(client, AT_REST, {"text": corpus.claims[0], "k": 10})
    cosines = _rebuild(probes, answers, corpus, from_ranks=True)
    baseline = corpus.vectors @ corpus.public_mean / np.linalg.norm(corpus.public_mean)
    # Assert: SPARSE_TRIGGER - 1 answers, then "key suspended for probing" for everything
    statuses = [a.status_code for a in answers]
    assert statuses[: SPARSE_TRIGGER - 1] == [200] * (SPARSE_TRIGGER - 1)
    assert set(statuses[SPARSE_TRIGGER - 1 :]) == {403}
    assert answers[-1].json()["error"]["problem"] == "key suspended for probing"
    assert text_after.status_code == 403
    assert cosines.mean() < 0.1 < baseline.mean()  # less than public text already gives
    records = _records(guarded, key_id)
    alert = next(detail for decision, detail in records if decision == "alert:probing")
    assert json.loads(alert)["signal"] == "basis-like"
    assert json.loads(alert)["suspended"] is True
    assert sum(d == "deny:suspended" for d, _ in records) == len(probes) - SPARSE_TRIGGER + 2
    with guarded.admin_client() as admin:
        listed = next(k for k in admin.credentials() if k.key_id == key_id)
    assert listed.suspended_at is not None


def test_the_operator_resumes_a_suspended_key(guarded: LocalIndexService, corpus: Corpus) -> None:
    # Prepare: a key suspended by random-direction probing (a full window of them)
    key_id, token = _partner(guarded, "resumed", vector_queries=True)
    rng = np.random.default_rng(7)
    probes = rng.standard_normal((WINDOW, DIM))
    with guarded.client(token) as client:
        statuses = [a.status_code for a in _probe(client, probes, k=5)]
    # Execute: the operator's CLI, on the running service's files
    resumed = subprocess.run(
        [sys.executable, "-m", "fedembed", "partner", "resume", key_id,
         "--data-dir", str(guarded.data_dir)],
        env={**os.environ, **guarded.env}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    with guarded.gateway_client(token) as partner:
        after = partner.query(AT_REST, corpus.claims[1], k=3)
    # Assert
    assert statuses == [200] * (WINDOW - 1) + [403]
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["suspended_at"] is None
    assert [h.rank for h in after.hits] == [1, 2, 3]
    assert "alert:probing" in {d for d, _ in _records(guarded, key_id)}


def test_natural_text_queries_are_never_flagged(guarded: LocalIndexService, corpus: Corpus) -> None:
    # Prepare: a default key; three windows of SciFact claims, as a partner sends them
    key_id, token = _partner(guarded, "natural")
    _, exact_token = _partner(guarded, "natural-exact", score_release="exact")
    claims = corpus.claims[: 3 * WINDOW]
    # Execute
    with guarded.gateway_client(token) as partner:
        results = [partner.query(AT_REST, claim, k=10) for claim in claims]
    with guarded.gateway_client(exact_token) as partner:
        exact = [partner.query(AT_REST, claim, k=10) for claim in claims]
    # Assert: answered, never flagged, and in the same order as exact scores rank them
    assert [r.doc_ids for r in results] == [r.doc_ids for r in exact]
    assert len(results) == 3 * WINDOW
    assert all([h.rank for h in r.hits] == list(range(1, 11)) for r in results)
    assert all(h.score is None for r in results for h in r.hits)
    decisions = {d for d, _ in _records(guarded, key_id)}
    assert decisions == {"allow"}


def test_rank_release_stops_exact_reconstruction_where_exact_scores_allow_it(
    lenient: LocalIndexService, corpus: Corpus
) -> None:
    # Prepare: suspension is off here, so the probers get every answer; k = all documents
    probes = np.eye(DIM)
    _, exact_token = _partner(
        lenient, "exact-prober", vector_queries=True, score_release="exact", top_k_cap=DOCS
    )
    _, rank_token = _partner(lenient, "rank-prober", vector_queries=True, top_k_cap=DOCS)
    # Execute
    with lenient.client(exact_token) as client:
        exact_answers = _probe(client, probes, k=DOCS)
    with lenient.client(rank_token) as client:
        rank_answers = _probe(client, probes, k=DOCS)
    exact = _rebuild(probes, exact_answers, corpus, from_ranks=False)
    ranked = _rebuild(probes, rank_answers, corpus, from_ranks=True)
    # Assert: exact scores rebuild every vector; ranks give no exact rebuild of any
    assert {a.status_code for a in exact_answers + rank_answers} == {200}
    assert all(h["score"] is None for a in rank_answers for h in a.json()["results"])
    assert exact.min() > 0.999
    assert ranked.max() < 0.99
    assert ranked.mean() < 0.95


def test_a_spent_budget_is_a_429_that_a_restart_does_not_refill(tmp_path: Path) -> None:
    # Prepare: a 16-dimensional gateway, a key with a budget of 3 queries a day
    kek = secrets.token_bytes(32)
    service = _start(tmp_path / "svc", kek, "--no-text-queries")
    vectors = np.random.default_rng(0).standard_normal((4, 16))
    try:
        with service.admin_client() as admin:
            admin.create_collection("small", 16)
            node = admin.issue_credential("node", "node-a", ["small"])
            key = admin.issue_credential(
                "partner", "thrifty", ["small"], vector_queries=True, query_budget=3
            )
            other = admin.issue_credential("partner", "other", ["small"], vector_queries=True)
        with service.gateway_client(node.token) as client:
            client.upsert_documents("small", ["a", "b", "c", "d"], vectors)
        # Execute
        with service.client(key.token) as raw:
            answered = [_query(raw, "small", {"vector": v.tolist(), "k": 2}) for v in vectors[:3]]
            refused = _query(raw, "small", {"vector": vectors[3].tolist(), "k": 2})
    finally:
        service.stop()
    restarted = _start(tmp_path / "svc", kek, "--no-text-queries")
    try:
        with (
            restarted.gateway_client(key.token) as partner,
            pytest.raises(RateLimitedError) as after,
        ):
            partner.query("small", vector=vectors[0], k=2)
        with restarted.gateway_client(other.token) as partner:
            unaffected = partner.query("small", vector=vectors[0], k=2)
        records = _records(restarted, key.key.key_id)
    finally:
        restarted.stop()
    # Assert
    assert [a.status_code for a in answered] == [200, 200, 200]
    assert refused.status_code == 429
    assert set(refused.json()) == {"error"}
    assert "query budget of 3" in refused.json()["error"]["problem"]
    assert 86_000 < int(refused.headers["Retry-After"]) <= 86_400
    assert after.value.status == 429
    assert after.value.retry_after_s > 86_000
    assert unaffected.hits[0].doc_id == "a"
    assert [d for d, _ in records].count("deny:query-budget") == 2


def test_a_partner_cannot_grant_itself_vector_queries(guarded: LocalIndexService) -> None:
    # a partner's own token is not the admin token: the create-key route refuses it
    _, token = _partner(guarded, "ambitious")
    with guarded.client(token) as client:
        answer = client.post(
            routes.ISSUE_CREDENTIAL.path(),
            json={"role": "partner", "name": "me", "scopes": ["*"], "vector_queries": True},
        )
    assert answer.status_code in (401, 403)
    with pytest.raises(PermissionDeniedError), guarded.gateway_client(token) as partner:
        partner.query(AT_REST, vector=np.ones(DIM), k=1)
