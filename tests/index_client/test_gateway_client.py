"""GatewayClient against a real gateway: node uploads and deletes, partner queries, CKKS
blocks, and every refusal as a typed error carrying the gateway's own text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from crypto.ckks_search import CkksDocumentEncryptor
from deployment.flower_processes import free_port
from index_client.admin_client import AdminClient
from index_client.errors import (
    AuthenticationError,
    GatewayUnavailableError,
    PermissionDeniedError,
    RateLimitedError,
    RequestRejectedError,
)
from index_client.gateway_client import GatewayClient
from index_client.transport import MAX_RETRY_AFTER_S

DIM, DOCS, OTHER, SEALED = 16, "docs", "other", "sealed"  # as provisioned by conftest
Consortium = Any


def _unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def test_a_node_upserts_and_deletes_and_a_partner_finds_them(consortium: Consortium) -> None:
    # Prepare
    x = _unit(30, seed=1)
    ids = [f"up-{i}" for i in range(30)]
    node = GatewayClient(consortium.service.url, consortium.node_token)
    partner = GatewayClient(consortium.service.url, consortium.partner_token)
    with node, partner:
        # Execute
        first = node.upsert_documents(DOCS, ids, x, tags=[["even" if i % 2 == 0 else "odd"]
                                                          for i in range(30)])  # fmt: skip
        again = node.upsert_documents(DOCS, ids, x)
        found = partner.query(DOCS, vector=x[4], k=3)
        tagged = partner.query(DOCS, vector=x[5], k=5, tags=["even"])
        mine = partner.query(DOCS, vector=x[4], k=3, owner="node-a")
        deleted = node.delete_documents(DOCS, ids[4:6])
        after = partner.query(DOCS, vector=x[4], k=3)
        described = partner.describe(DOCS)
        listed = partner.collections()
    # Assert
    assert (first.collection, first.inserted, first.updated) == (DOCS, 30, 0)
    assert (again.inserted, again.updated) == (0, 30)
    assert again.seq > first.seq
    assert found.collection == DOCS
    assert found.k == 3
    assert found.hits[0].doc_id == "up-4"
    assert found.hits[0].owner == "node-a"
    assert found.hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all(int(h.doc_id.split("-")[1]) % 2 == 0 for h in tagged.hits)
    assert mine.doc_ids == found.doc_ids
    assert deleted == 2
    assert "up-4" not in after.doc_ids
    assert (described.dimension, described.protection) == (DIM, "at-rest")
    assert {c.name for c in listed} == {DOCS, SEALED}  # the key's scopes, not "other"


def test_a_node_puts_ckks_blocks_that_a_partner_searches(consortium: Consortium) -> None:
    # Prepare
    x = _unit(6, seed=2).astype(np.float64)
    ids = [f"sealed-{i}" for i in range(6)]
    node = GatewayClient(consortium.service.url, consortium.node_token)
    partner = GatewayClient(consortium.service.url, consortium.partner_token)
    with node, partner:
        encryptor = CkksDocumentEncryptor(node.ckks_public_context(), dimension=DIM)
        # Execute
        put = [
            node.upload_block(SEALED, 0, ids[:3], encryptor.encrypt_block(x[:3])),
            node.upload_block(SEALED, 1, ids[3:], encryptor.encrypt_block(x[3:])),
        ]
        found = partner.query(SEALED, vector=x[4], k=2)
        gone = node.delete_block(SEALED, 1)
        gone_again = node.delete_block(SEALED, 1)
        after = partner.query(SEALED, vector=x[4], k=6)
        described = partner.describe(SEALED)
    # Assert
    assert [(p.name, p.documents, p.blocks) for p in put] == [(SEALED, 3, 1), (SEALED, 6, 2)]
    assert found.hits[0].doc_id == "sealed-4"
    assert found.hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert (gone, gone_again) == (True, False)
    assert sorted(after.doc_ids) == ids[:3]
    assert (described.protection, described.documents) == ("ckks", 3)


def test_a_refusal_carries_the_gateways_problem_expected_and_fix(
    consortium: Consortium,
) -> None:
    partner = GatewayClient(consortium.service.url, consortium.partner_token)
    with partner, pytest.raises(PermissionDeniedError) as caught:
        partner.query(OTHER, vector=_unit(1, seed=3)[0])
    assert caught.value.status == 403
    assert caught.value.problem == "your key is not scoped to collection 'other'"
    assert caught.value.expected == f"one of {sorted([DOCS, SEALED])}"
    assert caught.value.fix == "ask the operator to extend the key's scopes"
    assert "Fix: ask the operator" in str(caught.value)


@pytest.mark.parametrize(
    ("call", "status", "words"),
    [
        (lambda g: g.query(DOCS, vector=[0.1] * DIM, k=21), 403, "cap of 20"),
        (lambda g: g.query(DOCS, "a text", k=3), 422, "does not embed text"),
        (lambda g: g.query(DOCS, vector=[0.1] * 3), 422, "dimensions"),
        (lambda g: g.query(DOCS), 422, "exactly one"),
        (lambda g: g.query(SEALED, vector=[0.1] * DIM, tags=["t"]), 422, "no tags"),
    ],
)
def test_a_partners_mistakes_are_request_errors_or_denials(
    consortium: Consortium, call: Callable[[GatewayClient], object], status: int, words: str
) -> None:
    kind = PermissionDeniedError if status == 403 else RequestRejectedError
    with (
        GatewayClient(consortium.service.url, consortium.partner_token) as partner,
        pytest.raises(kind) as caught,
    ):
        call(partner)
    assert caught.value.status == status
    assert words in caught.value.problem + caught.value.expected
    assert caught.value.fix


def test_a_partner_key_cannot_upload(consortium: Consortium) -> None:
    with (
        GatewayClient(consortium.service.url, consortium.partner_token) as partner,
        pytest.raises(PermissionDeniedError, match="partner key cannot upload"),
    ):
        partner.upsert_documents(DOCS, ["x"], _unit(1, seed=4))


def test_an_unknown_key_is_an_authentication_error(consortium: Consortium) -> None:
    with (
        GatewayClient(consortium.service.url, "fek_000000000000_" + "x" * 43) as stranger,
        pytest.raises(AuthenticationError, match="unknown, malformed or revoked"),
    ):
        stranger.collections()


def test_a_rate_limited_query_is_refused_or_retried_after_the_wait(
    consortium: Consortium,
) -> None:
    # Prepare: a key with one token, refilled at one per second
    with AdminClient(consortium.service.url, consortium.service.admin_token) as admin:
        key = admin.issue_credential(
            "partner", "slow", [DOCS], rate_per_minute=60, burst=1, vector_queries=True
        )
    once = GatewayClient(consortium.service.url, key.token)
    patient = GatewayClient(consortium.service.url, key.token, retries=2)
    vector = _unit(1, seed=7)[0]
    with once, patient:
        # Execute
        once.query(DOCS, vector=vector, k=1)
        with pytest.raises(RateLimitedError) as caught:
            once.query(DOCS, vector=vector, k=1)
        retried = patient.query(DOCS, vector=vector, k=1)  # waits Retry-After, then passes
    # Assert
    assert caught.value.status == 429
    assert caught.value.retry_after_s >= 1
    assert "rate limit" in caught.value.problem
    assert retried.k == 1


def test_a_spent_query_budget_is_raised_at_once_even_with_retries(
    consortium: Consortium,
) -> None:
    # Prepare: a key with a budget of one answered query a day
    with AdminClient(consortium.service.url, consortium.service.admin_token) as admin:
        key = admin.issue_credential(
            "partner", "thrifty", [DOCS], query_budget=1, budget_window_s=86_400,
            vector_queries=True,
        )  # fmt: skip
    patient = GatewayClient(consortium.service.url, key.token, retries=3)
    vector = _unit(1, seed=8)[0]
    with patient:
        patient.query(DOCS, vector=vector, k=1)
        # Execute: the budget's Retry-After is hours away: no client sleeps that long
        with pytest.raises(RateLimitedError) as caught:
            patient.query(DOCS, vector=vector, k=1)
    # Assert
    assert caught.value.status == 429
    assert caught.value.retry_after_s > MAX_RETRY_AFTER_S
    assert "budget" in caught.value.problem


def test_a_service_that_is_not_running_is_unavailable() -> None:
    with GatewayClient(f"http://127.0.0.1:{free_port()}", "any-key") as gateway:
        assert not gateway.healthy()
        with pytest.raises(GatewayUnavailableError, match="unreachable") as caught:
            gateway.collections()
    assert caught.value.status == 0


def test_mismatched_ids_and_vectors_are_refused_before_sending(consortium: Consortium) -> None:
    with (
        GatewayClient(consortium.service.url, consortium.node_token) as node,
        pytest.raises(ValueError, match="one vector"),
    ):
        node.upsert_documents(DOCS, ["a", "b"], _unit(3, seed=6))
