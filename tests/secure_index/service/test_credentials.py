"""API keys: issue, authenticate, revoke (seen at once by other stores and processes),
secrets never stored, malformed tokens refused, scopes and input validation."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.errors import KeyManagementError
from embedding_core.errors import FedembedError
from index_client.names import NAME_RE
from secure_index.service.credentials import Credential, CredentialRole, CredentialStore

TOKEN_RE = re.compile(r"fek_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
AUTH_BUDGET_S = 0.005  # a slow KDF (bcrypt, scrypt) on this path would take 50+ ms


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    return CredentialStore(tmp_path / "credentials.sqlite")


def test_create_returns_a_token_that_authenticates_to_the_record(store: CredentialStore) -> None:
    # Execute
    cred, token = store.create(
        role=CredentialRole.PARTNER, name="insurer-x", scopes=["claims", "policies"], top_k_cap=20
    )
    # Assert
    match = TOKEN_RE.fullmatch(token)
    assert match is not None
    assert match.group(1) == cred.key_id
    assert cred.role is CredentialRole.PARTNER
    assert cred.scopes == frozenset({"claims", "policies"})
    assert (cred.top_k_cap, cred.rate_per_minute, cred.burst) == (20, 600, 60)
    assert cred.revoked_at is None
    assert cred.created_at.endswith("+00:00")
    assert store.authenticate(token) == cred
    assert store.get(cred.key_id) == cred


def test_two_keys_get_distinct_ids_and_secrets(store: CredentialStore) -> None:
    a, token_a = store.create(role=CredentialRole.NODE, name="node-a", scopes=["claims"])
    b, token_b = store.create(role=CredentialRole.NODE, name="node-a", scopes=["claims"])
    assert a.key_id != b.key_id
    assert token_a.split("_", 2)[2] != token_b.split("_", 2)[2]
    assert store.authenticate(token_a) == a
    assert store.authenticate(token_b) == b


def test_revocation_by_a_second_store_on_the_file_is_seen_at_once(tmp_path: Path) -> None:
    # Prepare: the server's store and the CLI's store on the same file
    path = tmp_path / "credentials.sqlite"
    server = CredentialStore(path)
    cred, token = server.create(role=CredentialRole.PARTNER, name="insurer-x", scopes=["claims"])
    assert server.authenticate(token) == cred
    cli = CredentialStore(path)
    # Execute
    revoked = cli.revoke(cred.key_id)
    # Assert
    assert revoked.revoked_at is not None
    assert server.authenticate(token) is None
    assert server.get(cred.key_id) == revoked
    assert server.list() == []
    assert server.list(include_revoked=True) == [revoked]


def test_revocation_by_another_process_is_seen_at_once(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "credentials.sqlite"
    server = CredentialStore(path)
    cred, token = server.create(role=CredentialRole.PARTNER, name="insurer-x", scopes=["claims"])
    assert server.authenticate(token) is not None
    code = (
        "import sys; from pathlib import Path; "
        "from secure_index.service.credentials import CredentialStore; "
        "print(CredentialStore(Path(sys.argv[1])).revoke(sys.argv[2]).revoked_at)"
    )
    # Execute
    run = subprocess.run(
        [sys.executable, "-c", code, str(path), cred.key_id],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    # Assert
    assert run.returncode == 0, run.stderr
    assert server.authenticate(token) is None
    revoked = server.get(cred.key_id)
    assert revoked is not None
    assert revoked.revoked_at == run.stdout.strip()


def test_revoking_twice_is_a_no_op_returning_the_record(store: CredentialStore) -> None:
    cred, _ = store.create(role=CredentialRole.NODE, name="node-a", scopes=["*"])
    first = store.revoke(cred.key_id)
    second = store.revoke(cred.key_id)
    assert first.revoked_at is not None
    assert second == first


def test_revoking_an_unknown_id_says_how_to_find_the_right_one(store: CredentialStore) -> None:
    with pytest.raises(KeyManagementError, match="no API key with id 'abcdef012345'") as info:
        store.revoke("abcdef012345")
    assert "partner list" in info.value.fix


def test_neither_token_nor_secret_is_stored_in_the_database_files(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "credentials.sqlite"
    store = CredentialStore(path)
    _, token = store.create(role=CredentialRole.PARTNER, name="insurer-marker", scopes=["claims"])
    secret = token.split("_", 2)[2]
    # Execute: every file SQLite wrote (database, WAL, shared memory)
    blobs = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(path.name))
    # Assert
    assert b"insurer-marker" in blobs  # the scan does see what was written
    assert hashlib.sha256(secret.encode()).digest() in blobs  # ...including the digest
    assert secret.encode() not in blobs
    assert token.encode() not in blobs
    assert secret[:16].encode() not in blobs


def test_database_is_private_and_in_wal_mode(store: CredentialStore) -> None:
    store.create(role=CredentialRole.PARTNER, name="insurer-x", scopes=["claims"])
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    for side in store.path.parent.glob(store.path.name + "-*"):
        assert stat.S_IMODE(side.stat().st_mode) == 0o600, side
    with sqlite3.connect(store.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _malformed_tokens(token: str, other_id: str) -> dict[str, str]:
    key_id, secret = TOKEN_RE.fullmatch(token).groups()  # type: ignore[union-attr]
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    return {
        "empty": "",
        "prefix only": "fek_",
        "wrong prefix": "fex_" + token[4:],
        "no prefix": token[4:],
        "unknown id": f"fek_{'0' * 12}_{secret}",
        "another key's id": f"fek_{other_id}_{secret}",
        "wrong secret": f"fek_{key_id}_{flipped}",
        "short secret": token[:-1],
        "long secret": token + "A",
        "trailing newline": token + "\n",
        "upper-case id": f"fek_{key_id.upper()}_{secret}" if key_id.upper() != key_id else "x",
        "padding": token + "=",
        "huge": "fek_" + "A" * 10_000_000,
        "non-ascii": token[:-1] + "é",
    }


def test_malformed_unknown_and_wrong_tokens_are_refused(store: CredentialStore) -> None:
    # Prepare
    cred, token = store.create(role=CredentialRole.PARTNER, name="insurer-x", scopes=["claims"])
    other, _ = store.create(role=CredentialRole.PARTNER, name="insurer-y", scopes=["claims"])
    # Execute
    results = {
        name: store.authenticate(bad)
        for name, bad in _malformed_tokens(token, other.key_id).items()
    }
    # Assert
    assert results == dict.fromkeys(results)
    assert store.authenticate(token) == cred  # the genuine token still works


def test_a_revoked_token_is_refused(store: CredentialStore) -> None:
    cred, token = store.create(role=CredentialRole.PARTNER, name="insurer-x", scopes=["claims"])
    store.revoke(cred.key_id)
    assert store.authenticate(token) is None


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=100))
def test_arbitrary_strings_never_authenticate(store: CredentialStore, junk: str) -> None:
    assert store.authenticate(junk) is None


def test_scopes_allow_listed_collections_or_all() -> None:
    some = Credential(
        "0" * 12, CredentialRole.PARTNER, "p", frozenset({"claims"}), 10, 60, 6, "t", None
    )
    every = Credential(
        "1" * 12, CredentialRole.PARTNER, "p", frozenset({"*"}), 10, 60, 6, "t", None
    )
    assert some.allows("claims")
    assert not some.allows("policies")
    assert not some.allows("*")
    assert not some.allows("claims2")
    assert every.allows("claims")
    assert every.allows("anything.else")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "it is empty"),
        ({"name": "   "}, "it contains a space"),
        ({"name": "insurer\nx"}, "control character"),
        ({"name": "x" * 129}, "129 characters"),
        ({"name": "x/../hospital-a"}, "it contains '/'"),
        ({"name": ".."}, "reserved"),
        ({"scopes": []}, "at least one scope"),
        ({"scopes": "claims"}, "single string"),
        ({"scopes": ["claims", "bad name"]}, "'bad name' is not a collection name"),
        ({"scopes": ["x" * 65]}, "is not a collection name"),
        ({"scopes": ["../etc"]}, "is not a collection name"),
        ({"top_k_cap": 0}, "top_k_cap is 0"),
        ({"rate_per_minute": -5}, "rate_per_minute is -5"),
        ({"burst": 0}, "burst is 0"),
        ({"burst": True}, "burst is True"),
    ],
)
def test_invalid_requests_are_refused_with_a_fix(
    store: CredentialStore, kwargs: dict[str, object], message: str
) -> None:
    # Prepare
    args: dict[str, object] = {
        "role": CredentialRole.PARTNER,
        "name": "insurer-x",
        "scopes": ["claims"],
    }
    args.update(kwargs)
    # Execute / Assert
    with pytest.raises(FedembedError, match=re.escape(message)) as info:
        store.create(**args)  # type: ignore[arg-type]
    assert info.value.expected
    assert info.value.fix
    assert store.list(include_revoked=True) == []


def test_list_filters_by_role_and_revocation_in_order_of_issue(store: CredentialStore) -> None:
    p1, _ = store.create(role=CredentialRole.PARTNER, name="p1", scopes=["claims"])
    n1, _ = store.create(role=CredentialRole.NODE, name="node-a", scopes=["claims"])
    p2, _ = store.create(role=CredentialRole.PARTNER, name="p2", scopes=["*"])
    store.revoke(p1.key_id)
    p1 = store.get(p1.key_id)  # type: ignore[assignment]
    assert [c.key_id for c in store.list()] == [n1.key_id, p2.key_id]
    assert store.list(role=CredentialRole.PARTNER) == [p2]
    assert store.list(role=CredentialRole.PARTNER, include_revoked=True) == [p1, p2]
    assert store.list(role=CredentialRole.NODE) == [n1]
    assert store.get("ffffffffffff") is None


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.from_regex(NAME_RE, fullmatch=True),
    scopes=st.sets(st.from_regex(NAME_RE, fullmatch=True), min_size=1, max_size=4),
    caps=st.tuples(*(st.integers(1, 10**6) for _ in range(3))),
)
def test_records_round_trip_through_the_database(
    store: CredentialStore, name: str, scopes: set[str], caps: tuple[int, int, int]
) -> None:
    cred, token = store.create(
        role=CredentialRole.NODE,
        name=name,
        scopes=scopes,
        top_k_cap=caps[0],
        rate_per_minute=caps[1],
        burst=caps[2],
    )
    assert CredentialStore(store.path).get(cred.key_id) == cred
    assert store.authenticate(token) == cred
    assert cred.name == name
    assert cred.scopes == frozenset(scopes)


def test_many_threads_create_and_authenticate_concurrently(store: CredentialStore) -> None:
    # Prepare
    issued: list[tuple[Credential, str]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            for j in range(10):
                pair = store.create(
                    role=CredentialRole.NODE, name=f"node-{i}-{j}", scopes=["claims"]
                )
                assert store.authenticate(pair[1]) == pair[0]
                with lock:
                    issued.append(pair)
        except BaseException as exc:  # collected and re-checked in the main thread
            failures.append(exc)

    # Execute
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Assert
    assert failures == []
    assert len({c.key_id for c, _ in issued}) == 80
    assert len(store.list()) == 80


def test_authenticate_is_fast_enough_to_read_the_database_every_call(
    store: CredentialStore,
) -> None:
    # Prepare: a realistic table
    for i in range(200):
        store.create(role=CredentialRole.PARTNER, name=f"p{i}", scopes=["claims"])
    cred, token = store.create(role=CredentialRole.PARTNER, name="insurer-x", scopes=["claims"])
    calls = 2000
    # Execute
    start = time.perf_counter()
    results = [store.authenticate(token) for _ in range(calls)]
    per_call = (time.perf_counter() - start) / calls
    # Assert
    assert results == [cred] * calls
    print(f"authenticate: {per_call * 1e6:.1f} us per call over {calls} calls")
    assert per_call < AUTH_BUDGET_S


def test_a_file_that_is_not_a_credential_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "credentials.sqlite"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(KeyManagementError, match="not a usable credential database"):
        CredentialStore(path)
