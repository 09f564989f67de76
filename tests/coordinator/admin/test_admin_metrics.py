"""``/metrics``: request counts by route template, denials, and the runs' ledgers on scrape."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from coordinator.admin.home import ConsortiumHome
from coordinator.admin.tokens import AdminRole


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _ledger(rounds: list[dict[str, object]], epsilon: dict[str, float]) -> str:
    """A ledger in the shape FederationLedger.to_dict writes."""
    refusals = [
        {"round": r["round"], "node": node, "reason": report["error"]}
        for r in rounds
        for node, report in r["nodes"].items()  # type: ignore[attr-defined]
        if "error" in report
    ]
    return json.dumps(
        {
            "sample_level": {"per_node_epsilon": epsilon, "observer": "fellow_member"},
            "node_level": {"epsilon": None},
            "refusals": refusals,
            "rounds": rounds,
        }
    )


def test_scrape_counts_requests_denials_and_reads_every_runs_ledger(
    admin_client: TestClient,
    admin_home: ConsortiumHome,
    admin_auth: dict[AdminRole, dict[str, str]],
) -> None:
    # Prepare: two runs with ledgers, one with a corrupt ledger, one without any
    answered = {"hospital-a": {"epsilon": 0.5}, "hospital-b": {"epsilon": 0.4}}
    rounds: list[dict[str, object]] = [
        {"round": 1, "released": True, "nodes": answered},
        {"round": 2, "released": False, "nodes": {"hospital-a": {"error": "budget spent"}}},
    ]
    for run, text in (
        ("run-1", _ledger(rounds, {"hospital-a": 0.5, "hospital-b": 0.4})),
        ("run-2", _ledger(rounds[:1], {"hospital-a": 0.25})),
        ("run-3", "{not json"),
    ):
        (admin_home.runs / run).mkdir(parents=True)
        (admin_home.runs / run / "federation_ledger.json").write_text(text, encoding="utf-8")
    (admin_home.runs / "run-4").mkdir()
    admin_client.get("/v1/tokens", headers=admin_auth[AdminRole.AUDITOR])  # a 403
    admin_client.get("/v1/tokens")  # a 401
    admin_client.get("/v1/tokens", headers=admin_auth[AdminRole.ADMIN])
    admin_client.get("/no/such/0123456789ab")
    # Execute
    scrape = admin_client.get("/metrics", headers=admin_auth[AdminRole.AUDITOR])
    # Assert
    assert scrape.status_code == 200
    got = _samples(scrape.text)
    route = (("method", "GET"), ("route", "/v1/tokens"))
    assert got["fedembed_admin_requests_total", (*route, ("status", "200"))] == 1
    assert got["fedembed_admin_denials_total", (*route, ("status", "403"))] == 1
    assert got["fedembed_admin_denials_total", (*route, ("status", "401"))] == 1
    assert got["fedembed_admin_request_duration_seconds_count", route] == 3
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert got["fedembed_admin_requests_total", unmatched] == 1
    assert "0123456789ab" not in scrape.text
    assert got["fedembed_federation_rounds", (("run", "run-1"),)] == 2
    assert got["fedembed_federation_rounds_released", (("run", "run-1"),)] == 1
    assert got["fedembed_federation_refusals", (("run", "run-1"),)] == 1
    assert got["fedembed_federation_refusals", (("run", "run-2"),)] == 0
    epsilon = "fedembed_federation_member_epsilon"
    assert got[epsilon, (("member", "hospital-b"), ("run", "run-1"))] == 0.4
    assert got[epsilon, (("member", "hospital-a"), ("run", "run-2"))] == 0.25
    assert not any(
        labels == (("run", "run-3"),) or labels == (("run", "run-4"),) for _, labels in got
    )


def test_health_needs_no_token_and_says_nothing_more(admin_client: TestClient) -> None:
    health = admin_client.get("/healthz")

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


def test_an_unexpected_failure_is_a_bare_500_counted_and_logged(
    admin_app: FastAPI,
    admin_auth: dict[AdminRole, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: a route that fails the way a bug would
    def broken() -> None:
        raise RuntimeError("secret detail /srv/consortium/kits")

    admin_app.add_api_route("/v1/broken", broken, methods=["GET"])
    # Execute
    with TestClient(admin_app, raise_server_exceptions=False) as client:
        answer = client.get("/v1/broken")
        scrape = client.get("/metrics", headers=admin_auth[AdminRole.AUDITOR])
    # Assert
    assert answer.status_code == 500
    assert answer.json()["error"]["problem"] == "internal error"
    assert "secret detail" not in answer.text
    assert "RuntimeError" in caplog.text
    labels = (("method", "GET"), ("route", "/v1/broken"), ("status", "500"))
    assert _samples(scrape.text)["fedembed_admin_requests_total", labels] == 1
