"""The secret-file rule: owner-only, owned by the reader, a regular file; one message.

An operator who widens a key file's mode (or a backup restored with the umask's 0644) must
see fedembed refuse it with the path, the mode and ``chmod 600 PATH``, in every reader.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crypto.ckks_search_key import CkksSearchKey, load_ckks_key, save_ckks_key
from crypto.dcpe_keys import DcpeKeyring
from crypto.secret_files import (
    SecretFileError,
    read_secret_file,
    require_secret_file,
    write_secret_file,
)

SECRET = b"not really a key, but treated as one"
OPEN_MODES = [0o644, 0o640, 0o604, 0o660, 0o606, 0o700 | 0o004, 0o620]
OWNER_ONLY = [0o600, 0o400]
NOBODY = 65534


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """A permissive umask, so a writer cannot lean on the default 022."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _secret(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(SECRET)
    path.chmod(mode)
    return path


def _assert_refusal(error: SecretFileError, path: Path, mode: int) -> None:
    assert str(path) in error.problem
    assert f"mode {mode:04o}" in error.problem
    assert "0600 or stricter" in error.expected
    assert f"uid {os.geteuid()}" in error.expected
    assert error.fix == f"chmod 600 {path}"


@pytest.mark.parametrize("mode", OPEN_MODES)
@pytest.mark.parametrize("check", [read_secret_file, require_secret_file])
def test_a_file_group_or_others_may_access_is_refused(
    tmp_path: Path, mode: int, check: Callable[..., object]
) -> None:
    path = _secret(tmp_path, mode)
    with pytest.raises(SecretFileError) as caught:
        check(path, what="test secret")
    _assert_refusal(caught.value, path, mode)
    assert SECRET.decode() not in str(caught.value)


@pytest.mark.parametrize("mode", OWNER_ONLY)
def test_an_owner_only_file_is_read(tmp_path: Path, mode: int) -> None:
    path = _secret(tmp_path, mode)
    require_secret_file(path, what="test secret")
    assert read_secret_file(path, what="test secret") == SECRET


def test_a_symlink_is_judged_by_the_file_it_points_to(tmp_path: Path) -> None:
    # Prepare: secret mounts are often symlinks to the real file
    target = _secret(tmp_path, 0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    # Execute / Assert
    assert read_secret_file(link, what="test secret") == SECRET
    target.chmod(0o644)
    with pytest.raises(SecretFileError, match="mode 0644"):
        read_secret_file(link, what="test secret")


def test_a_folder_is_not_a_secret_file(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    with pytest.raises(SecretFileError, match="not a regular file"):
        require_secret_file(folder, what="test secret")


def test_a_fifo_planted_at_the_path_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "kek.json"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(SecretFileError, match="not a regular file"):
        read_secret_file(fifo, what="test secret")


def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a file of another user needs root (CI runs as root)")
    path = _secret(tmp_path, 0o600)
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(SecretFileError, match=f"owned by uid {NOBODY}") as caught:
        read_secret_file(path, what="test secret")
    assert f"chmod 600 {path}" in caught.value.fix


def test_a_missing_file_is_the_callers_to_explain(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_secret_file(tmp_path / "absent", what="test secret")


@pytest.mark.usefixtures("umask_zero")
def test_the_writer_creates_and_replaces_files_0600_without_leftovers(tmp_path: Path) -> None:
    # Prepare: an existing file that someone made world-readable
    path = _secret(tmp_path, 0o644)
    # Execute
    write_secret_file(path, b"new")
    write_secret_file(tmp_path / "fresh.bin", b"fresh")
    # Assert
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "fresh.bin").stat().st_mode) == 0o600
    assert read_secret_file(path, what="test secret") == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.bin", "secret.bin"]


@pytest.mark.usefixtures("umask_zero")
def test_the_dcpe_keyring_follows_the_rule(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "keyring.json"
    ring = DcpeKeyring.create(path, tenant="acme", beta=0.5)
    ring.rotate()
    # Execute / Assert: written 0600 even under umask 0, read back, refused once widened
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DcpeKeyring.load(path).key_ids == ring.key_ids
    path.chmod(0o644)
    with pytest.raises(SecretFileError) as caught:
        DcpeKeyring.load(path)
    _assert_refusal(caught.value, path, 0o644)


@pytest.mark.usefixtures("umask_zero")
def test_the_ckks_search_key_follows_the_rule(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "ckks_search.key"
    save_ckks_key(CkksSearchKey.generate(dimension=8), path)
    # Execute / Assert
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_ckks_key(path).layout.dimension == 8
    path.chmod(0o640)
    with pytest.raises(SecretFileError) as caught:
        load_ckks_key(path)
    _assert_refusal(caught.value, path, 0o640)
