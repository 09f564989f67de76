"""AdminClient against a real gateway: collections, snapshots, keys issued, listed, revoked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from index_client.admin_client import AdminClient
from index_client.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    RequestRejectedError,
)
from index_client.gateway_client import GatewayClient

DIM, DOCS, SEALED = 16, "docs", "sealed"  # as provisioned by conftest
Consortium = Any


def _admin(consortium: Consortium) -> AdminClient:
    return AdminClient(consortium.service.url, consortium.service.admin_token)


def test_collections_are_created_listed_and_snapshotted(consortium: Consortium) -> None:
    # Prepare
    vectors = np.eye(DIM, dtype=np.float32)[:3]
    with _admin(consortium) as admin:
        # Execute
        created = admin.create_collection("tenders", DIM, metric="l2", protection="at-rest")
        key = admin.issue_credential("node", "node-t", ["tenders"])
        with GatewayClient(consortium.service.url, key.token) as node:
            node.upsert_documents("tenders", ["a", "b", "c"], vectors)
        generation = admin.snapshot("tenders")
        listed = {c.name: c for c in admin.collections()}
    # Assert
    assert (created.name, created.dimension, created.metric) == ("tenders", DIM, "l2")
    assert (created.protection, created.documents) == ("at-rest", 0)
    assert generation > created.generation
    assert listed["tenders"].documents == 3
    assert listed["tenders"].folded_seq == listed["tenders"].last_seq
    assert DOCS in listed


def test_creating_an_existing_collection_is_a_conflict(consortium: Consortium) -> None:
    with _admin(consortium) as admin, pytest.raises(ConflictError, match="already exists"):
        admin.create_collection(DOCS, DIM)


def test_creating_an_existing_ckks_collection_is_a_conflict(consortium: Consortium) -> None:
    with _admin(consortium) as admin, pytest.raises(ConflictError) as caught:
        admin.create_ckks_collection(SEALED)
    assert caught.value.status == 409


def test_a_snapshot_of_a_missing_collection_is_not_found(consortium: Consortium) -> None:
    with _admin(consortium) as admin, pytest.raises(NotFoundError, match="does not exist"):
        admin.snapshot("missing")


def test_a_key_is_shown_once_listed_without_token_and_revoked_at_once(
    consortium: Consortium,
) -> None:
    # Prepare
    with _admin(consortium) as admin:
        issued = admin.issue_credential(
            "partner", "auditor", [DOCS], top_k_cap=5, rate_per_minute=120, burst=7
        )
        partner = GatewayClient(consortium.service.url, issued.token)
        with partner:
            before = partner.collections()
            # Execute
            revoked = admin.revoke_credential(issued.key.key_id)
            with pytest.raises(AuthenticationError, match="revoked"):
                partner.collections()
        listed = {k.key_id: k for k in admin.credentials()}
    # Assert
    assert issued.key.role == "partner"
    assert issued.key.name == "auditor"
    assert issued.key.scopes == (DOCS,)
    assert (issued.key.top_k_cap, issued.key.rate_per_minute, issued.key.burst) == (5, 120, 7)
    assert issued.key.revoked_at is None
    assert issued.token.startswith("fek_")
    assert issued.token not in repr(issued)
    assert [c.name for c in before] == [DOCS]
    assert revoked.revoked_at is not None
    assert listed[issued.key.key_id].revoked_at == revoked.revoked_at


def test_revoking_an_unknown_key_says_where_to_find_the_ids(consortium: Consortium) -> None:
    with _admin(consortium) as admin, pytest.raises(NotFoundError) as caught:
        admin.revoke_credential("000000000000")
    assert caught.value.problem == "no key '000000000000'"
    assert caught.value.expected == "a key id from GET /v1/admin/credentials"
    assert caught.value.fix == "check the id"


def test_an_invalid_key_request_is_rejected_with_the_field_named(consortium: Consortium) -> None:
    with _admin(consortium) as admin, pytest.raises(RequestRejectedError, match="role") as caught:
        admin.issue_credential("superuser", "x", [DOCS])
    assert caught.value.status == 422


def test_a_wrong_admin_token_is_an_authentication_error(consortium: Consortium) -> None:
    stranger = AdminClient(consortium.service.url, "not-the-token")
    with stranger, pytest.raises(AuthenticationError, match="wrong admin token") as caught:
        stranger.collections()
    assert caught.value.expected == "FEDEMBED_INDEX_ADMIN_TOKEN"
