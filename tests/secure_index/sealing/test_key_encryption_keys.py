"""KEK providers: key file lifecycle (create, load, rotate, retire), environment keys."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from crypto.errors import KeyManagementError
from crypto.secret_files import SecretFileError
from secure_index.sealing.aead import DecryptionError
from secure_index.sealing.key_encryption_keys import (
    EnvKeks,
    KeyFileKeks,
    WrappedKey,
    load_keks,
)

DATA_KEY = bytes(range(100, 132))
AD = b"header of the file"
VAR = "FEDEMBED_TEST_KEK"


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_create_writes_a_private_file_with_one_primary_version(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "keys" / "kek.json"
    # Execute
    keks = KeyFileKeks.create(path)
    # Assert
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keks.primary_id == "kek-1"
    [version] = keks.versions()
    assert (version.id, version.primary) == ("kek-1", True)
    assert version.created.endswith("+00:00")
    assert set(vars(version)) == {"id", "created", "primary"}  # no key bytes
    assert [p.name for p in path.parent.iterdir()] == ["kek.json"]  # no temp file left


def test_create_refuses_to_overwrite_an_existing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    KeyFileKeks.create(path)
    before = path.read_bytes()
    with pytest.raises(KeyManagementError, match="already exists") as excinfo:
        KeyFileKeks.create(path)
    assert "rotate" in excinfo.value.fix
    assert path.read_bytes() == before


def test_a_loaded_key_file_unwraps_what_the_created_one_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    wrapped = KeyFileKeks.create(path).wrap(DATA_KEY, associated_data=AD)
    loaded = KeyFileKeks.load(path)
    assert wrapped.kek_id == "kek-1"
    assert DATA_KEY not in wrapped.blob
    assert loaded.unwrap(wrapped, associated_data=AD) == DATA_KEY


def test_unwrap_binds_associated_data_and_kek_id(tmp_path: Path) -> None:
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    wrapped = keks.wrap(DATA_KEY, associated_data=AD)
    keks.rotate()
    with pytest.raises(DecryptionError):
        keks.unwrap(wrapped, associated_data=b"another file's header")
    with pytest.raises(DecryptionError):  # relabelled to another known KEK
        keks.unwrap(WrappedKey("kek-2", wrapped.blob), associated_data=AD)
    with pytest.raises(ValueError, match="associated_data"):
        keks.wrap(DATA_KEY, associated_data=b"")


def test_rotate_adds_a_primary_and_keeps_old_versions_usable(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    keks = KeyFileKeks.create(path)
    old = keks.wrap(DATA_KEY, associated_data=AD)
    new_id = keks.rotate()
    new = keks.wrap(DATA_KEY, associated_data=AD)
    reloaded = KeyFileKeks.load(path)
    assert new_id == "kek-2"
    assert new.kek_id == "kek-2"
    assert [(v.id, v.primary) for v in reloaded.versions()] == [
        ("kek-1", False),
        ("kek-2", True),
    ]
    assert reloaded.unwrap(old, associated_data=AD) == DATA_KEY
    assert reloaded.unwrap(new, associated_data=AD) == DATA_KEY


def test_retire_removes_a_version_and_names_it_when_it_is_needed(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    keks = KeyFileKeks.create(path)
    old = keks.wrap(DATA_KEY, associated_data=AD)
    keks.rotate()
    keks.retire("kek-1")
    document = json.loads(path.read_text())
    for provider in (keks, KeyFileKeks.load(path)):
        with pytest.raises(KeyManagementError, match=r"kek-1 was retired"):
            provider.unwrap(old, associated_data=AD)
        assert [v.id for v in provider.versions()] == ["kek-2"]
    assert [k["id"] for k in document["keys"]] == ["kek-2"]
    assert KeyFileKeks.load(path).rotate() == "kek-3"  # ids are never reused


def test_retire_refuses_the_primary_and_unknown_ids(tmp_path: Path) -> None:
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    with pytest.raises(KeyManagementError, match="primary") as excinfo:
        keks.retire("kek-1")
    assert "rotate" in excinfo.value.fix
    with pytest.raises(KeyManagementError, match="kek-9 is not known"):
        keks.retire("kek-9")


def test_unknown_kek_id_is_a_key_management_error_naming_it(tmp_path: Path) -> None:
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    with pytest.raises(KeyManagementError, match="kek-7 is not known") as excinfo:
        keks.unwrap(WrappedKey("kek-7", b"x" * 60), associated_data=AD)
    assert "key file" in excinfo.value.fix


def _write_key_file(path: Path, **changes: object) -> None:
    KeyFileKeks.create(path)
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))
    path.chmod(0o600)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "format"),
        (json.dumps({"format": "fedembed-kek-file", "version": 9}).encode(), "version"),
        (
            json.dumps({"format": "fedembed-kek-file", "version": 1, "keys": []}).encode(),
            "non-empty",
        ),
    ],
)
def test_load_rejects_malformed_files_clearly(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "kek.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyManagementError, match=message):
        KeyFileKeks.load(path)


def test_load_rejects_a_key_of_the_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    KeyFileKeks.create(path)
    document = json.loads(path.read_text())
    document["keys"][0]["key"] = _b64(bytes(16))
    path.write_text(json.dumps(document))
    with pytest.raises(KeyManagementError, match="16 bytes, not 32"):
        KeyFileKeks.load(path)


def test_load_rejects_a_primary_that_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    _write_key_file(path, primary="kek-5")
    with pytest.raises(KeyManagementError, match="primary"):
        KeyFileKeks.load(path)


def test_load_of_a_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(KeyManagementError, match="does not exist") as excinfo:
        KeyFileKeks.load(tmp_path / "nope.json")
    assert "fedembed index keys create --key-file" in excinfo.value.fix


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_load_refuses_a_key_file_that_group_or_others_may_access(tmp_path: Path, mode: int) -> None:
    # Prepare: a valid key file whose mode an operator widened
    path = tmp_path / "kek.json"
    KeyFileKeks.create(path)
    path.chmod(mode)
    # Execute
    with pytest.raises(SecretFileError) as excinfo:
        KeyFileKeks.load(path)
    # Assert: the path, the mode, what is expected and the fix
    assert str(path) in excinfo.value.problem
    assert f"mode {mode:04o}" in excinfo.value.problem
    assert "0600 or stricter" in excinfo.value.expected
    assert excinfo.value.fix == f"chmod 600 {path}"


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_an_owner_only_key_file(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek.json"
    created = KeyFileKeks.create(path)
    path.chmod(mode)
    assert KeyFileKeks.load(path).primary_id == created.primary_id


def test_env_keks_first_entry_is_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = os.urandom(32), os.urandom(32)
    monkeypatch.setenv(VAR, f"kek-a={_b64(first)}, kek-b={_b64(second)}")
    keks = EnvKeks.from_env(VAR)
    wrapped = keks.wrap(DATA_KEY, associated_data=AD)
    assert keks.primary_id == "kek-a"
    assert wrapped.kek_id == "kek-a"
    assert keks.unwrap(wrapped, associated_data=AD) == DATA_KEY


def test_env_keks_and_key_file_are_interchangeable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kek.json"
    wrapped = KeyFileKeks.create(path).wrap(DATA_KEY, associated_data=AD)
    key = json.loads(path.read_text())["keys"][0]["key"]
    monkeypatch.setenv(VAR, f"kek-1={key}")
    assert EnvKeks.from_env(VAR).unwrap(wrapped, associated_data=AD) == DATA_KEY


def test_env_keks_accepts_a_bare_key_with_a_derived_id(monkeypatch: pytest.MonkeyPatch) -> None:
    key = bytes(range(32))
    monkeypatch.setenv(VAR, _b64(key))
    keks = EnvKeks.from_env(VAR)
    assert keks.primary_id == "env-" + hashlib.sha256(key).hexdigest()[:8]
    assert keks.primary_id == "env-630dcd29"  # golden: SHA-256 of bytes 0..31


@pytest.mark.parametrize(
    "value",
    [
        "kek-1=c2VjcmV0LW5vdC1iYXNlNjQ=",  # 19 bytes
        "kek-1=this is not base64 at all!",
        "=" + _b64(bytes(32)),
        f"kek-1={_b64(bytes(32))},kek-1={_b64(bytes(32))}",
        "just-a-secret-word",
    ],
    ids=["short-key", "not-base64", "no-id", "duplicate-id", "garbage"],
)
def test_env_keks_rejects_malformed_values_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(VAR, value)
    with pytest.raises(KeyManagementError, match=VAR) as excinfo:
        EnvKeks.from_env(VAR)
    secret_part = value.split("=", 1)[-1]
    assert secret_part not in str(excinfo.value)


def test_env_keks_unset_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)
    with pytest.raises(KeyManagementError, match="not set") as excinfo:
        EnvKeks.from_env(VAR)
    assert "base64" in excinfo.value.fix


def test_load_keks_prefers_the_key_file_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kek.json"
    KeyFileKeks.create(path)
    monkeypatch.setenv(VAR, f"env-1={_b64(bytes(32))}")
    from_file = load_keks(key_file=path, env_var=VAR)
    from_env = load_keks(env_var=VAR)
    monkeypatch.delenv(VAR)
    with pytest.raises(KeyManagementError, match="no key-encryption key") as excinfo:
        load_keks(env_var=VAR)
    assert isinstance(from_file, KeyFileKeks)
    assert from_file.primary_id == "kek-1"
    assert isinstance(from_env, EnvKeks)
    assert from_env.primary_id == "env-1"
    assert "fedembed index keys create --key-file" in excinfo.value.fix
    assert VAR in excinfo.value.fix


def test_the_wrap_binds_the_kek_id_even_for_equal_key_material(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    same = _b64(os.urandom(32))
    monkeypatch.setenv(VAR, f"kek-a={same},kek-b={same}")
    keks = EnvKeks.from_env(VAR)
    wrapped = keks.wrap(DATA_KEY, associated_data=AD)
    with pytest.raises(DecryptionError):
        keks.unwrap(WrappedKey("kek-b", wrapped.blob), associated_data=AD)
