"""The admin token store: secrets shown once, only their SHA-256 on disk, revocable at once."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.admin.errors import AdminInvalidError, AdminNotFoundError
from coordinator.admin.token_store import AdminTokenStore, TokenStoreError
from coordinator.admin.tokens import AdminRole
from index_client.names import NAME_RE

SETTINGS = settings(max_examples=40, derandomize=True, database=None, deadline=None)


def test_a_token_round_trips_and_only_its_digest_is_stored(tmp_path: Path) -> None:
    # Prepare
    store = AdminTokenStore(tmp_path / "admin" / "tokens.json")
    # Execute
    token, secret = store.create("ops-alice", AdminRole.OPERATOR)
    # Assert
    assert secret.startswith(f"fea_{token.token_id}.")
    assert store.authenticate(secret) == token
    assert store.list() == [token]
    assert store.get(token.token_id) == token
    raw = store.path.read_text(encoding="utf-8")
    assert secret not in raw
    assert secret.split(".", 1)[1] not in raw
    assert hashlib.sha256(secret.encode()).hexdigest() in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_a_revocation_by_another_process_counts_at_the_next_call(tmp_path: Path) -> None:
    # Prepare: the service's store and the CLI's store over one file
    service = AdminTokenStore(tmp_path / "tokens.json")
    token, secret = service.create("ci-deploy", "admin")
    assert service.authenticate(secret) == token
    # Execute
    revoked = AdminTokenStore(tmp_path / "tokens.json").revoke(token.token_id)
    # Assert
    assert revoked.revoked is not None
    assert service.authenticate(secret) is None
    assert service.list() == [revoked]
    assert service.list(include_revoked=False) == []
    assert service.revoke(token.token_id) == revoked  # twice: unchanged


def test_wrong_unknown_and_malformed_secrets_are_refused(tmp_path: Path) -> None:
    store = AdminTokenStore(tmp_path / "tokens.json")
    token, secret = store.create("a", AdminRole.AUDITOR)
    other = AdminTokenStore(tmp_path / "other.json").create("a", AdminRole.AUDITOR)[1]
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    forged = f"fea_{token.token_id}." + other.split(".", 1)[1]

    assert [store.authenticate(s) for s in (flipped, forged, other, "", secret + "x")] == [None] * 5


@SETTINGS
@given(junk=st.text(max_size=80))
def test_no_junk_string_authenticates(tmp_path_factory: pytest.TempPathFactory, junk: str) -> None:
    store = AdminTokenStore(tmp_path_factory.mktemp("junk") / "tokens.json")
    store.create("a", AdminRole.ADMIN)

    assert store.authenticate(junk) is None


@SETTINGS
@given(name=st.text(max_size=70))
def test_names_follow_the_one_name_rule(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    store = AdminTokenStore(tmp_path_factory.mktemp("names") / "tokens.json")
    if NAME_RE.fullmatch(name):
        assert store.create(name, AdminRole.AUDITOR)[0].name == name
    else:
        with pytest.raises(AdminInvalidError, match="token name"):
            store.create(name, AdminRole.AUDITOR)
        assert store.list() == []


def test_an_unknown_role_and_an_unknown_id_are_clear_errors(tmp_path: Path) -> None:
    store = AdminTokenStore(tmp_path / "tokens.json")

    with pytest.raises(AdminInvalidError, match="role 'root'") as invalid:
        store.create("a", "root")
    with pytest.raises(AdminNotFoundError) as missing:
        store.revoke("000000000000")

    assert "auditor" in invalid.value.expected
    assert "token list" in missing.value.expected


def test_a_corrupt_or_world_readable_file_is_refused(tmp_path: Path) -> None:
    # Prepare
    store = AdminTokenStore(tmp_path / "tokens.json")
    _token, secret = store.create("a", AdminRole.ADMIN)
    document = json.loads(store.path.read_text(encoding="utf-8"))
    # Execute / Assert: edited into something that is no token file
    document["tokens"][0]["secret_sha256"] = "not-a-digest"
    store.path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(TokenStoreError, match="not a valid token file") as corrupt:
        store.authenticate(secret)
    assert corrupt.value.status == 503
    assert "backup" in corrupt.value.fix
    # Execute / Assert: mode 0644
    store.path.write_text("{}", encoding="utf-8")
    os.chmod(store.path, 0o644)
    with pytest.raises(TokenStoreError, match="group or others"):
        store.list()
