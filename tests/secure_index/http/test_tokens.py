"""Service tokens and bearer headers against a caller who tries short, empty or malformed
credentials: the services refuse to start with a token under 32 characters, and the
running gateway accepts only exactly ``Authorization: Bearer <token>``."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from index_client import routes
from secure_index.service.deps import check_store_token
from secure_index.service.http_errors import ApiError
from secure_index.service.settings import ServiceSettings
from tests.secure_index.http.raw_http import raw_request

Deployment = Any  # the conftest's deployment (a conftest is not importable)

COLLECTIONS = routes.LIST_COLLECTIONS.path()
CREDENTIALS = routes.LIST_CREDENTIALS.path()


def _serve(tmp_path: Path, *args: str, **tokens: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDEMBED_INDEX_")}
    env |= {"HF_HUB_OFFLINE": "1", "FEDEMBED_INDEX_KEK": base64.b64encode(bytes(32)).decode()}
    env |= {f"FEDEMBED_INDEX_{name.upper()}": value for name, value in tokens.items()}
    return subprocess.run(
        [sys.executable, "-m", "fedembed", "index", "serve", "--data-dir", str(tmp_path), *args],
        capture_output=True, text=True, check=False, env=env, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("admin_token", ["", "x" * 31, "correct-horse-battery-staple"])
def test_serve_refuses_a_short_admin_token_and_says_how_to_make_one(
    tmp_path: Path, admin_token: str
) -> None:
    result = _serve(tmp_path, admin_token=admin_token)
    assert result.returncode == 2
    assert f"FEDEMBED_INDEX_ADMIN_TOKEN is {len(admin_token)} characters long" in result.stderr
    assert "at least 32 characters" in result.stderr
    assert "secrets.token_urlsafe(32)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not admin_token or admin_token not in result.stderr  # the value is never shown


def test_serve_refuses_a_short_store_token(tmp_path: Path) -> None:
    result = _serve(
        tmp_path, "--role", "store", admin_token=secrets.token_urlsafe(32), store_token="s" * 20
    )
    assert result.returncode == 2
    assert "FEDEMBED_INDEX_STORE_TOKEN is 20 characters long" in result.stderr


def test_settings_take_a_token_of_32_characters(tmp_path: Path) -> None:
    settings = ServiceSettings(
        data_dir=tmp_path, admin_token=SecretStr("t" * 32), store_token=SecretStr("s" * 32)
    )
    assert settings.admin_token.get_secret_value() == "t" * 32
    with pytest.raises(ValidationError, match="characters a bearer token cannot carry"):
        ServiceSettings(data_dir=tmp_path, admin_token=SecretStr("t" * 31 + " x"))


def test_an_empty_store_token_lets_nobody_in() -> None:
    for header in ("Bearer ", "Bearer", "", None):
        with pytest.raises(ApiError) as refused:
            check_store_token("", header)
        assert refused.value.status == 401


@pytest.mark.parametrize(
    "template",
    [
        "Bearer ",
        "Bearer  {t}",
        "bearer {t}",
        "Bearer\t{t}",
        "Basic {t}",
        "Bearer {t} {t}",
        "Bearer {t}x",
        "{t}",
    ],
)
@pytest.mark.parametrize("who", ["partner", "admin"])
def test_only_an_exact_bearer_header_gets_in(
    module_deployment: Deployment, template: str, who: str
) -> None:
    # Prepare: the header exactly as an attacker writes it (no client normalises it)
    token = (
        module_deployment.partner_token
        if who == "partner"
        else module_deployment.service.admin_token
    )
    path = COLLECTIONS if who == "partner" else CREDENTIALS
    # Execute
    refused = raw_request(
        module_deployment.service.url, "GET", path, [("Authorization", template.format(t=token))]
    )
    exact = raw_request(
        module_deployment.service.url, "GET", path, [("Authorization", f"Bearer {token}")]
    )
    # Assert
    assert refused.status == 401
    assert exact.status == 200


def test_two_authorization_headers_are_refused(module_deployment: Deployment) -> None:
    token = module_deployment.partner_token
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    answer = raw_request(module_deployment.service.url, "GET", COLLECTIONS, headers)
    assert answer.status == 401
