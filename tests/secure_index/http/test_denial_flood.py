"""A partner floods the running gateway with requests it may not make: out-of-scope
queries and describes become 429s within its rate limit and write a handful of audit
records, listing its collections spends the same rate, and requests with an unknown key
write none."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from index_client import routes
from secure_index.service.settings import audit_path

Deployment = Any  # the conftest's deployment (a conftest is not importable)
DIM = 16  # the conftest's collections
FLOOD = 300
OUT_OF_SCOPE = routes.QUERY.path(collection="other")
DESCRIBE_OTHER = routes.DESCRIBE_COLLECTION.path(collection="other")


def _audit_lines(deployment: Deployment) -> int:
    return len(audit_path(deployment.service.data_dir).read_text().splitlines())


def test_300_out_of_scope_queries_at_6_per_minute_write_a_handful_of_records(
    deployment_factory: Callable[..., Deployment],
) -> None:
    # Prepare: a partner key limited to 6/min with a burst of 5
    dep = deployment_factory(burst=5, rate_per_minute=6)
    before = _audit_lines(dep)
    # Execute
    started = time.monotonic()
    with dep.service.client(dep.partner_token) as partner:
        codes = Counter(
            partner.post(OUT_OF_SCOPE, json={"vector": [0.1] * DIM}).status_code
            for _ in range(FLOOD)
        )
    refilled = (time.monotonic() - started) / 10.0  # tokens refilled meanwhile (6/min)
    written = _audit_lines(dep) - before
    # Assert: the burst (and any token refilled meanwhile) is 403, every other request 429
    assert set(codes) == {403, 429}
    assert 5 <= codes[403] <= 5 + refilled + 1
    assert codes[429] == FLOOD - codes[403]
    # a record per 403; per streak of 429s one record and one summary when it ends
    assert written <= codes[403] + 2 * (codes[403] - 5) + 1


def test_a_flood_with_unknown_keys_writes_no_audit_record(module_deployment: Deployment) -> None:
    # Prepare
    before = _audit_lines(module_deployment)
    forged = "fek_000000000000_" + "A" * 43
    # Execute
    with module_deployment.service.client(forged) as attacker:
        codes = Counter(
            attacker.post(OUT_OF_SCOPE, json={"vector": [0.1] * DIM}).status_code
            for _ in range(FLOOD)
        )
    # Assert
    assert codes == Counter({401: FLOOD})
    assert _audit_lines(module_deployment) == before


def test_300_out_of_scope_describes_are_rate_limited_and_audited(
    deployment_factory: Callable[..., Deployment],
) -> None:
    # Prepare: a partner key limited to 6/min with a burst of 5
    dep = deployment_factory(burst=5, rate_per_minute=6)
    before = _audit_lines(dep)
    # Execute: describe a collection outside the key's scope, over and over
    started = time.monotonic()
    with dep.service.client(dep.partner_token) as partner:
        codes = Counter(partner.get(DESCRIBE_OTHER).status_code for _ in range(FLOOD))
    refilled = (time.monotonic() - started) / 10.0
    records = [
        json.loads(line)
        for line in audit_path(dep.service.data_dir).read_text().splitlines()[before:]
    ]
    # Assert: as for queries, the burst is 403 and the rest 429, each 403 on the record
    assert set(codes) == {403, 429}
    assert 5 <= codes[403] <= 5 + refilled + 1
    assert codes[429] == FLOOD - codes[403]
    denied = [r for r in records if r["decision"] == "deny:scope"]
    assert len(denied) == codes[403]
    assert {(r["action"], r["collection"]) for r in denied} == {("describe", "other")}
    assert any(r["decision"] == "deny:rate-limit" for r in records)
    assert len(records) <= codes[403] + 2 * (codes[403] - 5) + 1


def test_listing_collections_spends_the_rate_too(
    deployment_factory: Callable[..., Deployment],
) -> None:
    # Prepare
    dep = deployment_factory(burst=5, rate_per_minute=6)
    # Execute
    started = time.monotonic()
    with dep.service.client(dep.partner_token) as partner:
        codes = Counter(partner.get(routes.LIST_COLLECTIONS.path()).status_code for _ in range(40))
    refilled = (time.monotonic() - started) / 10.0
    # Assert: the burst (and any token refilled meanwhile) is served, the rest is 429
    assert set(codes) == {200, 429}
    assert 5 <= codes[200] <= 5 + refilled + 1
