"""Gateway access control against a caller who floods it: denials take rate tokens, a 429
streak is audited once plus one summary, 401s are never audited, the bearer header is
parsed strictly, and an allowed write is audited (durably) before it is carried out.

Real parts throughout (credential database, keyed audit log); only the rate limiter's
clock is a fake one, so the test decides when tokens refill."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_log import AuditLog, ids_digest, verify_audit_log
from secure_index.service.credentials import Credential, CredentialRole, CredentialStore
from secure_index.service.gateway_access import Action, GatewayAccess, bearer_token
from secure_index.service.http_errors import ApiError
from secure_index.service.rate_limit import RateLimiter

ADMIN_TOKEN = "admin-token-" + "x" * 32
FLOOD = 300


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Gateway:
    """One gateway's access control over real files."""

    def __init__(self, tmp_path: Path) -> None:
        self.keks = KeyFileKeks.create(tmp_path / "kek.json")
        self.audit_path = tmp_path / "audit" / "audit.jsonl"
        self.audit = AuditLog(self.audit_path, keks=self.keks)
        self.credentials = CredentialStore(tmp_path / "credentials.sqlite")
        self.clock = FakeClock()
        self.access = GatewayAccess(
            credentials=self.credentials,
            audit=self.audit,
            rate=RateLimiter(clock=self.clock),
            admin_token=ADMIN_TOKEN,
        )

    def key(
        self, role: CredentialRole, rate_per_minute: int = 600, burst: int = 60
    ) -> tuple[Credential, str]:
        return self.credentials.create(
            role=role, name="k", scopes=["claims"], rate_per_minute=rate_per_minute, burst=burst
        )

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    made = Gateway(tmp_path)
    try:
        yield made
    finally:
        made.audit.close()
        made.credentials.close()


def _statuses(
    gateway: Gateway, cred: Credential, role: CredentialRole, collection: str
) -> list[int]:
    statuses = []
    for _ in range(FLOOD):
        try:
            gateway.access.authorise(cred, role, Action.QUERY, collection)
            statuses.append(200)
        except ApiError as err:
            statuses.append(err.status)
    return statuses


@pytest.mark.parametrize(
    ("role", "collection"),
    [(CredentialRole.PARTNER, "other"), (CredentialRole.NODE, "claims")],
    ids=["out-of-scope", "wrong-role"],
)
def test_a_flood_of_denied_requests_turns_into_429s_and_a_handful_of_records(
    gateway: Gateway, role: CredentialRole, collection: str
) -> None:
    # Prepare: a partner key limited to 6/min (burst 5), sending what it may not send
    cred, _ = gateway.key(CredentialRole.PARTNER, rate_per_minute=6, burst=5)
    # Execute: 300 denied requests without time passing, then one token refills
    statuses = _statuses(gateway, cred, role, collection)
    flood_records = gateway.records()
    gateway.clock.now += 10.0  # 6/min: one token
    with pytest.raises(ApiError) as after:
        gateway.access.authorise(cred, role, Action.QUERY, collection)
    # Assert: the burst is denied 403 (audited), everything else is 429
    assert statuses == [403] * 5 + [429] * (FLOOD - 5)
    decisions = [r["decision"] for r in flood_records]
    assert len(decisions) == 6
    assert decisions[5] == "deny:rate-limit"
    assert after.value.status == 403
    summary = gateway.records()[6]
    assert summary["action"] == "rate-limit-summary"
    assert summary["detail"] == {"name": "k", "status": 429, "unaudited_refusals": FLOOD - 6}
    assert len(gateway.records()) == 8  # the summary and the new 403
    assert verify_audit_log(gateway.audit_path, keks=gateway.keks).ok


def test_unknown_and_malformed_keys_get_401_and_write_nothing(gateway: Gateway) -> None:
    # Prepare
    _, token = gateway.key(CredentialRole.PARTNER, rate_per_minute=6, burst=5)
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    headers = [f"Bearer {wrong}", "Bearer ", "", f"bearer {token}", f"Bearer  {token}"]
    # Execute
    statuses = []
    for i in range(FLOOD):
        try:
            gateway.access.authenticate(headers[i % len(headers)])
        except ApiError as err:
            statuses.append(err.status)
    # Assert
    assert statuses == [401] * FLOOD
    assert gateway.records() == []


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer  ",
        "Bearer  tok",
        "bearer tok",
        "BEARER tok",
        "Basic dXNlcjpwYXNz",
        "Bearer\ttok",
        " Bearer tok",
        "Bearer tok ",
        "Bearer tok\n",
        "Bearer tok\x00",
        "Bearer tok\x7f",
        "Bearer tok extra",
        "Bearer tok=x",
        "Bearer tök",
    ],
)
def test_only_exactly_bearer_space_token_is_a_bearer_token(header: str | None) -> None:
    assert bearer_token(header) is None


def test_a_well_formed_bearer_header_gives_its_token() -> None:
    assert bearer_token("Bearer fek_0123_abc-DEF.~+/==") == "fek_0123_abc-DEF.~+/=="


def test_an_empty_admin_token_lets_nobody_in(tmp_path: Path) -> None:
    # Prepare: a gateway misconfigured with an empty admin token (the settings refuse it)
    gateway = Gateway(tmp_path)
    access = GatewayAccess(
        credentials=gateway.credentials, audit=gateway.audit, rate=RateLimiter(), admin_token=""
    )
    # Execute / Assert: the attack of the finding, and its variants
    for header in ("Bearer ", "Bearer", "", None):
        with pytest.raises(ApiError) as refused:
            access.check_admin(header)
        assert refused.value.status == 401
    gateway.audit.close()


def test_an_allowed_write_is_audited_before_it_is_carried_out(gateway: Gateway) -> None:
    # Prepare
    cred, _ = gateway.key(CredentialRole.NODE)
    ids = ["doc-2", "doc-1", "doc-3"]
    # Execute: no store write has happened yet
    gateway.access.allowed_write(cred, Action.UPLOAD, "claims", ids)
    # Assert: the record is on disk, with the batch's size and the digest of its ids
    (record,) = gateway.records()
    assert (record["action"], record["decision"]) == ("upload", "allow")
    assert record["detail"] == {"name": "k", "items": 3, "ids_sha256": ids_digest(ids)}
    assert ids_digest(ids) != ids_digest(sorted(ids))  # order is part of the batch
    assert verify_audit_log(gateway.audit_path, keks=gateway.keks).ok
