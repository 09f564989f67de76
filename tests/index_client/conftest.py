"""A real index service (gateway + store, with a CKKS key) on loopback, provisioned by the
clients under test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
from index_client.admin_client import AdminClient
from secure_index.service.local_service import LocalIndexService, start_index_service

DIM = 16
DOCS, OTHER, SEALED = "docs", "other", "sealed"


@dataclass
class Consortium:
    """The running service, its collections and one node and one partner key."""

    service: LocalIndexService
    node_token: str
    partner_token: str


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    root = tmp_path_factory.mktemp("index-client")
    key_file = root / "ckks_search.key"
    save_ckks_key(CkksSearchKey.generate(dimension=DIM), key_file)
    service = start_index_service(
        root / "service",
        kek=secrets.token_bytes(32),
        extra_args=("--no-text-queries", "--ckks-key-file", str(key_file)),
    )
    try:
        with AdminClient(service.url, service.admin_token) as admin:
            admin.create_collection(DOCS, DIM)
            admin.create_collection(OTHER, DIM)
            admin.create_ckks_collection(SEALED)
            node = admin.issue_credential("node", "node-a", [DOCS, SEALED])
            partner = admin.issue_credential(
                "partner",
                "insurer-x",
                [DOCS, SEALED],
                top_k_cap=20,
                vector_queries=True,
                score_release="exact",
            )
        yield Consortium(service, node.token, partner.token)
    finally:
        service.stop()
