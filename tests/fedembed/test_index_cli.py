"""``fedembed index`` and ``fedembed partner`` on real files (keys, collections, audit)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path


def fedembed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedembed", *args],
        capture_output=True, text=True, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )  # fmt: skip


def _json(result: subprocess.CompletedProcess[str]) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_kek_lifecycle_rotate_rewraps_and_retire_is_guarded(tmp_path: Path) -> None:
    # Prepare: a key file and an index with one collection
    kek, data = str(tmp_path / "kek.json"), str(tmp_path / "idx")
    assert _json(fedembed("index", "keys", "create", "--key-file", kek)) == {
        "key_file": kek,
        "primary": "kek-1",
    }
    _json(
        fedembed(
            "index",
            "collection",
            "create",
            "docs",
            "--dim",
            "8",
            "--data-dir",
            data,
            "--key-file",
            kek,
        )
    )
    # Execute
    rotated = _json(fedembed("index", "keys", "rotate", "--key-file", kek, "--data-dir", data))
    retired = _json(
        fedembed("index", "keys", "retire", "kek-1", "--key-file", kek, "--data-dir", data)
    )
    # Assert
    assert rotated == {"primary": "kek-2", "rewrapped_files": 3, "older_files": {}}
    assert retired == {"retired": "kek-1", "primary": "kek-2"}
    listed = _json(fedembed("index", "keys", "list", "--key-file", kek))
    assert [v["id"] for v in listed] == ["kek-2"]  # type: ignore[union-attr, index]
    assert "key" not in json.dumps(listed).replace("kek-", "")


def test_retire_refuses_while_files_still_use_the_version(tmp_path: Path) -> None:
    kek, data = str(tmp_path / "kek.json"), str(tmp_path / "idx")
    fedembed("index", "keys", "create", "--key-file", kek)
    _json(
        fedembed(
            "index",
            "collection",
            "create",
            "docs",
            "--dim",
            "8",
            "--data-dir",
            data,
            "--key-file",
            kek,
        )
    )
    # a second version added by hand, without re-wrapping the files
    from secure_index.sealing import KeyFileKeks

    KeyFileKeks.load(Path(kek)).rotate()
    result = fedembed("index", "keys", "retire", "kek-1", "--key-file", kek, "--data-dir", data)
    assert result.returncode == 2
    assert "still use kek-1" in result.stderr
    assert "keys rewrap" in result.stderr


def test_partner_keys_are_shown_once_listed_without_secrets_and_audited(tmp_path: Path) -> None:
    data = str(tmp_path / "svc")
    kek = {"FEDEMBED_INDEX_KEK": base64.b64encode(bytes(range(32))).decode()}
    created = _json(
        fedembed("partner", "create", "insurer-x", "--scope", "claims", "--data-dir", data, env=kek)
    )
    token, key_id = created["token"], created["key_id"]  # type: ignore[index]
    listed = fedembed("partner", "list", "--data-dir", data)
    revoked = _json(fedembed("partner", "revoke", key_id, "--data-dir", data, env=kek))
    audit = _json(fedembed("index", "verify-audit", "--data-dir", data, env=kek))
    assert token.startswith("fek_")
    assert token not in listed.stdout
    assert key_id in listed.stdout
    assert revoked["revoked_at"]  # type: ignore[index]
    assert audit["ok"] is True  # type: ignore[index]
    assert audit["entries"] == 2  # type: ignore[index]
    unknown = fedembed("partner", "revoke", "000000000000", "--data-dir", data, env=kek)
    assert unknown.returncode == 2
    assert "000000000000" in unknown.stderr


def test_serve_without_admin_token_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDEMBED_INDEX_")}
    result = subprocess.run(
        [sys.executable, "-m", "fedembed", "index", "serve", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert "FEDEMBED_INDEX_ADMIN_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
