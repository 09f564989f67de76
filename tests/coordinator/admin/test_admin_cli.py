"""``fedembed coordinator admin``: tokens, the trail, settings errors, and a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from deployment.flower_processes import free_port
from fedembed.cli import app

REPO_ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ("FEDEMBED_ADMIN_HOME", "FEDEMBED_ADMIN_TRAIL_KEY", "FEDEMBED_ADMIN_PORT"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "home"


def _admin(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["coordinator", "admin", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_token_is_shown_once_listed_without_secret_and_revoked(home: Path) -> None:
    # Execute
    code, out, err = _admin(
        "token", "create", "--home", str(home), "--name", "ops", "--role", "admin"
    )
    created = json.loads(out)
    listed = _admin("token", "list", "--home", str(home))
    revoked = _admin("token", "revoke", created["token_id"], "--home", str(home))
    trail = _admin("verify-trail", "--home", str(home))
    # Assert
    assert code == 0, err
    assert "shown once" in err
    assert created["secret"].startswith(f"fea_{created['token_id']}.")
    assert created["secret"] not in listed[1]
    assert json.loads(listed[1])[0]["role"] == "admin"
    assert json.loads(revoked[1])["revoked"] is not None
    verdict = json.loads(trail[1])
    assert trail[0] == 0
    assert verdict["ok"]
    assert verdict["entries"] == 2
    records = [
        json.loads(line) for line in (home / "admin" / "trail.jsonl").read_text().splitlines()
    ]
    assert [(r["action"], r["actor"]) for r in records] == [
        ("token.create", "local"),
        ("token.revoke", "local"),
    ]


def test_a_tampered_trail_fails_verification_naming_the_line(home: Path) -> None:
    # Prepare
    for name in ("a", "b"):
        assert (
            _admin("token", "create", "--home", str(home), "--name", name, "--role", "auditor")[0]
            == 0
        )
    head = json.loads(_admin("verify-trail", "--home", str(home))[1])["head_hash"]
    path = home / "admin" / "trail.jsonl"
    path.write_text(path.read_text().replace('"name":"a"', '"name":"x"'))
    # Execute
    code, out, err = _admin("verify-trail", "--home", str(home), "--expected-head", head)
    # Assert
    assert code == 1, err
    verdict = json.loads(out)
    assert not verdict["ok"]
    assert verdict["line"] == 1
    assert "edited" in verdict["problem"]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("serve", "--home", "{home}", "--port", "70000"), ["--port", "65535"]),
        (("serve",), ["--home", "FEDEMBED_ADMIN_HOME"]),
        (
            ("token", "create", "--home", "{home}", "--name", "no spaces", "--role", "admin"),
            ["token name"],
        ),
        (
            ("token", "revoke", "000000000000", "--home", "{home}"),
            ["no admin API token", "token list"],
        ),
        (("verify-trail", "--home", "{home}"), ["no audit trail key", "--home"]),
    ],
    ids=["port", "home", "name", "unknown-id", "no-trail"],
)
def test_mistakes_are_one_line_naming_the_flag(
    home: Path, args: tuple[str, ...], names: list[str]
) -> None:
    code, _, err = _admin(*(a.replace("{home}", str(home)) for a in args))

    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ")
    assert all(name in line for name in names), err
    assert "Traceback" not in err


def test_an_unknown_role_is_a_usage_error(home: Path) -> None:
    code, _, err = _admin("token", "create", "--home", str(home), "--name", "a", "--role", "root")

    assert code == 2
    assert "--role" in err


def test_serve_answers_and_stops_on_sigterm(home: Path) -> None:
    # Prepare: a first admin token made by the CLI, then the real service
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FEDEMBED_ADMIN_HOME": str(home)}
    made = _admin("token", "create", "--home", str(home), "--name", "ops", "--role", "auditor")
    secret = json.loads(made[1])["secret"]
    server = subprocess.Popen(
        [sys.executable, "-m", "fedembed", "coordinator", "admin", "serve", "--port", str(port)],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[0]
                assert time.monotonic() < deadline, "the admin API did not start"
                time.sleep(0.2)
        # Execute
        denied = httpx.get(f"{url}/metrics", timeout=5)
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {secret}"})
        tokens = httpx.get(f"{url}/v1/tokens", headers={"Authorization": f"Bearer {secret}"})
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    # Assert
    assert health.json() == {"status": "ok"}
    assert denied.status_code == 401
    assert metrics.status_code == 200
    assert (
        'fedembed_admin_denials_total{method="GET",route="/metrics",status="401"} 1.0'
        in metrics.text
    )
    assert tokens.status_code == 403
    assert server.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert "Finished server process" in output
    assert secret not in output
    assert "Traceback" not in output
