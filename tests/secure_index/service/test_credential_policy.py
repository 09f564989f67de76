"""A key's query policy: defaults, grants, suspension, and the migration of version-1 files."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from crypto.errors import KeyManagementError
from secure_index.errors import RequestError
from secure_index.service.credentials import (
    DEFAULT_BUDGET_WINDOW_S,
    DEFAULT_QUERY_BUDGET,
    SCHEMA_VERSION,
    CredentialRole,
    CredentialStore,
)
from secure_index.service.score_release import ScoreRelease

# The schema fedembed wrote before keys had a query policy (schema version 1).
V1_SCHEMA = """
CREATE TABLE credentials (
    key_id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    top_k_cap INTEGER NOT NULL,
    rate_per_minute INTEGER NOT NULL,
    burst INTEGER NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    return CredentialStore(tmp_path / "credentials.sqlite")


def test_a_new_partner_key_gets_the_safe_defaults(store: CredentialStore) -> None:
    cred, token = store.create(role=CredentialRole.PARTNER, name="insurer-x", scopes=["claims"])
    assert cred.vector_queries is False
    assert cred.score_release is ScoreRelease.RANK
    assert (cred.query_budget, cred.budget_window_s) == (1000, 86_400)
    assert (DEFAULT_QUERY_BUDGET, DEFAULT_BUDGET_WINDOW_S) == (1000, 86_400)
    assert cred.suspended_at is None
    assert store.authenticate(token) == cred


def test_grants_round_trip_through_the_file(store: CredentialStore) -> None:
    cred, _ = store.create(
        role=CredentialRole.PARTNER,
        name="insurer-x",
        scopes=["claims"],
        vector_queries=True,
        score_release="coarse",
        query_budget=50,
        budget_window_s=3600,
    )
    again = CredentialStore(store.path).get(cred.key_id)
    assert again == cred
    assert (cred.vector_queries, cred.score_release) == (True, ScoreRelease.COARSE)
    assert (cred.query_budget, cred.budget_window_s) == (50, 3600)


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ({"score_release": "loose"}, "score_release is 'loose'"),
        ({"query_budget": 0}, "query_budget is 0"),
        ({"budget_window_s": -5}, "budget_window_s is -5"),
        ({"vector_queries": "yes"}, "vector_queries is 'yes'"),
    ],
)
def test_a_bad_policy_is_refused_with_a_fix(
    store: CredentialStore, policy: dict[str, object], words: str
) -> None:
    with pytest.raises(RequestError, match=words) as info:
        store.create(
            role=CredentialRole.PARTNER,
            name="insurer-x",
            scopes=["claims"],
            **policy,  # type: ignore[arg-type]
        )
    assert info.value.fix


def test_a_suspension_is_seen_by_another_store_at_once_and_resume_lifts_it(
    tmp_path: Path,
) -> None:
    # Prepare: the gateway's store and the operator's CLI store on one file
    gateway = CredentialStore(tmp_path / "credentials.sqlite")
    cred, token = gateway.create(role=CredentialRole.PARTNER, name="p", scopes=["claims"])
    cli = CredentialStore(gateway.path)
    # Execute
    suspended = gateway.suspend(cred.key_id)
    seen_by_cli = cli.get(cred.key_id)
    again = gateway.suspend(cred.key_id)
    resumed = cli.resume(cred.key_id)
    # Assert
    assert suspended.suspended_at is not None
    assert seen_by_cli == suspended
    assert again.suspended_at == suspended.suspended_at  # the first suspension time stays
    assert resumed.suspended_at is None
    assert gateway.authenticate(token) == resumed


def test_suspending_an_unknown_key_says_how_to_find_it(store: CredentialStore) -> None:
    with pytest.raises(KeyManagementError, match="partner list"):
        store.resume("0123456789ab")


def test_a_version_1_file_gets_the_policy_columns_with_their_defaults(tmp_path: Path) -> None:
    # Prepare: a file as the previous release wrote it, with one key in it
    path = tmp_path / "credentials.sqlite"
    db = sqlite3.connect(path)
    db.execute(V1_SCHEMA)
    db.execute(
        "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("a1b2c3d4e5f6", "partner", "insurer-x", '["claims"]', 20, 600, 60,
         b"\x00" * 32, "2026-01-01T00:00:00.000+00:00", None),
    )  # fmt: skip
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    # Execute
    store = CredentialStore(path)
    old = store.get("a1b2c3d4e5f6")
    new, _ = store.create(role=CredentialRole.PARTNER, name="insurer-y", scopes=["claims"])
    reopened = CredentialStore(path)
    # Assert: the old key keeps its limits and gets the safe defaults
    assert old is not None
    assert (old.name, old.top_k_cap, old.scopes) == ("insurer-x", 20, frozenset({"claims"}))
    assert old.vector_queries is False
    assert old.score_release is ScoreRelease.RANK
    assert (old.query_budget, old.budget_window_s, old.suspended_at) == (1000, 86_400, None)
    assert reopened.get(new.key_id) == new
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 2


def test_a_file_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "credentials.sqlite"
    CredentialStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(KeyManagementError, match="schema version 3"):
        CredentialStore(path)


def _fedembed(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedembed", *args],
        env={**os.environ, **env}, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_cli_issues_a_granted_key_and_resumes_a_suspended_one(tmp_path: Path) -> None:
    # Prepare
    kek = {"FEDEMBED_INDEX_KEK": base64.b64encode(secrets.token_bytes(32)).decode()}
    data = str(tmp_path / "svc")
    # Execute
    created = _fedembed(
        "partner", "create", "insurer-x", "--scope", "claims", "--data-dir", data,
        "--allow-vector-queries", "--scores", "coarse", "--query-budget", "5",
        "--budget-window-hours", "2", env=kek,
    )  # fmt: skip
    default = _fedembed("partner", "create", "insurer-y", "--scope", "claims",
                        "--data-dir", data, env=kek)  # fmt: skip
    wrong = _fedembed("partner", "create", "insurer-z", "--scope", "claims",
                      "--data-dir", data, "--scores", "precise", env=kek)  # fmt: skip
    key_id = json.loads(created.stdout)["key_id"]
    store = CredentialStore(tmp_path / "svc" / "credentials.sqlite")
    store.suspend(key_id)
    resumed = _fedembed("partner", "resume", key_id, "--data-dir", data, env=kek)
    # Assert
    assert created.returncode == 0, created.stderr
    granted = store.get(key_id)
    assert granted is not None
    assert (granted.vector_queries, granted.score_release) == (True, ScoreRelease.COARSE)
    assert (granted.query_budget, granted.budget_window_s) == (5, 7200)
    plain = store.get(json.loads(default.stdout)["key_id"])
    assert plain is not None
    assert (plain.vector_queries, plain.score_release, plain.query_budget) == (
        False,
        ScoreRelease.RANK,
        1000,
    )
    assert wrong.returncode == 2
    assert "--scores" in wrong.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["suspended_at"] is None
    assert granted.suspended_at is None
