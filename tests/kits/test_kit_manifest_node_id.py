"""A node kit's id is fixed at provisioning: an edited ``node_id`` in kit.json is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kits.layout import ProvisioningError
from kits.loader import load_node_kit
from kits.provisioning import ProvisionResult, provision


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> ProvisionResult:
    return provision(tmp_path_factory.mktemp("kits") / "out", node_ids=["alpha", "beta"])


def _copy_with_node_id(kit: Path, target: Path, node_id: str) -> Path:
    shutil.copytree(kit, target)
    manifest = target / "kit.json"
    content = json.loads(manifest.read_text())
    content["node_id"] = node_id
    manifest.write_text(json.dumps(content, indent=2))
    return target


def test_the_provisioned_kit_loads_under_its_own_id(consortium: ProvisionResult) -> None:
    assert load_node_kit(consortium.node_dirs["alpha"]).node_id == "alpha"


@pytest.mark.parametrize("edited", ["beta", "gamma"])
def test_an_edited_node_id_is_refused_naming_the_provisioned_one(
    consortium: ProvisionResult, tmp_path: Path, edited: str
) -> None:
    kit = _copy_with_node_id(consortium.node_dirs["alpha"], tmp_path / "kit", edited)

    with pytest.raises(ProvisioningError) as refused:
        load_node_kit(kit)

    message = str(refused.value)
    assert f"names node_id {edited!r}" in message
    assert "provisioned for 'alpha'" in message
    assert "kit.json was edited" in message
