"""Every secret file of every kit follows the secret-file rule (crypto.secret_files).

A kit copied with a careless ``cp``, unpacked by a tool that ignores modes, or edited by
an operator must be refused, naming the file, its mode and ``chmod 600 PATH``, before
anything reads it; the kits as provisioning wrote them (0600) load.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto.secret_files import SecretFileError
from kits import (
    ProvisioningError,
    ProvisionResult,
    generate_auth_key,
    install_auth_key,
    load_coordinator_kit,
    load_gateway_kit,
    load_node_kit,
    provision,
    run_ckks_ceremony,
)

Loader = Callable[[Path], object]


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> ProvisionResult:
    out = tmp_path_factory.mktemp("consortium") / "kits"
    result = provision(out, node_ids=["a", "b"], superlink_host="coord.example.org")
    run_ckks_ceremony(out, key_holder="a")
    return result


def _kit(consortium: ProvisionResult, part: str) -> Path:
    if part == "coordinator":
        return consortium.coordinator_dir
    if part == "gateway":
        return consortium.gateway_dir
    return consortium.node_dirs["b"]


LOADERS: dict[str, Loader] = {
    "node": load_node_kit,
    "coordinator": load_coordinator_kit,
    "gateway": load_gateway_kit,
}
SECRETS = [
    ("node", "auth.key"),
    ("node", "dcpe_keyring.json"),
    ("node", "ckks_secret.ctx"),
    ("coordinator", "server.key"),
    ("gateway", "ckks_search.key"),
    ("gateway", "dcpe_keyring.json"),
]


@pytest.mark.parametrize(("part", "name"), SECRETS)
def test_each_kit_secret_that_others_may_read_is_refused(
    consortium: ProvisionResult, tmp_path: Path, part: str, name: str
) -> None:
    # Prepare: a copy of the kit with one secret made world-readable
    kit = shutil.copytree(_kit(consortium, part), tmp_path / part)
    os.chmod(kit / name, 0o644)
    # Execute
    with pytest.raises(ProvisioningError) as caught:
        LOADERS[part](kit)
    # Assert: the path, the mode, the expectation and the fix
    assert str(kit / name) in caught.value.problem
    assert "mode 0644" in caught.value.problem
    assert "0600 or stricter" in caught.value.expected
    assert f"chmod 600 {kit / name}" in caught.value.fix


@pytest.mark.parametrize("part", sorted(LOADERS))
def test_kits_as_provisioned_load(consortium: ProvisionResult, part: str) -> None:
    assert LOADERS[part](_kit(consortium, part)) is not None


def test_installing_a_member_key_that_others_may_read_is_refused(tmp_path: Path) -> None:
    # Prepare: a member's own key pair, provisioned from its public half
    public = generate_auth_key(tmp_path / "premises")
    result = provision(tmp_path / "kits", node_ids=["a"], node_keys={"a": public.read_text()})
    key = tmp_path / "premises" / "auth.key"
    key.chmod(0o644)
    # Execute
    with pytest.raises(SecretFileError) as caught:
        install_auth_key(result.node_dirs["a"], key)
    # Assert: refused, nothing installed; accepted once the mode is fixed
    assert caught.value.fix == f"chmod 600 {key}"
    assert not (result.node_dirs["a"] / "auth.key").exists()
    key.chmod(0o600)
    install_auth_key(result.node_dirs["a"], key)
    assert load_node_kit(result.node_dirs["a"]).node_id == "a"
