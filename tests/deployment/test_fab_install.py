"""A node installs each Flower App bundle once (deployment.fab_install), with Flower's checks."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path
from typing import Any

import click
import flwr.supernode.runtime.run_clientapp as runner
import pytest
from flwr.cli.build import build_fab_from_files
from flwr.cli.install import install_from_fab

from deployment.fab_install import RECORD_FOLDER, install_bundles_once, install_once

PYPROJECT = b"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "tinyapp"
version = "1.0.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "fedembedtest"

[tool.flwr.app.components]
serverapp = "tiny.server:app"
clientapp = "tiny.client:app"

[tool.flwr.app.config]
rounds = 1
"""


def _bundle(client_source: bytes = b"app = None\n") -> bytes:
    fab, _ = build_fab_from_files(
        {
            "pyproject.toml": PYPROJECT,
            "tiny/__init__.py": b"",
            "tiny/client.py": client_source,
            "tiny/server.py": b"app = None\n",
        }
    )
    return fab


class CountingInstall:
    """Flower's own install, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fab: bytes, install_dir: Path | None, skip_prompt: bool) -> Path:
        self.calls += 1
        return Path(install_from_fab(fab, install_dir, skip_prompt=skip_prompt))


def test_a_bundle_is_extracted_only_the_first_time(tmp_path: Path) -> None:
    # Prepare
    fab, flower = _bundle(), CountingInstall()

    # Execute
    first = install_once(fab, tmp_path, install=flower)
    second = install_once(fab, tmp_path, install=flower)

    # Assert
    assert flower.calls == 1
    assert first == second
    assert (first / "tiny" / "client.py").read_bytes() == b"app = None\n"
    records = list((tmp_path / "apps" / RECORD_FOLDER).iterdir())
    assert len(records) == 1
    assert stat.S_IMODE(records[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(records[0].parent.stat().st_mode) == 0o700


def test_another_bundle_goes_through_flowers_install(tmp_path: Path) -> None:
    # Prepare
    flower = CountingInstall()
    first = install_once(_bundle(), tmp_path, install=flower)

    # Execute
    second = install_once(_bundle(b"app = 'second'\n"), tmp_path, install=flower)

    # Assert
    assert flower.calls == 2
    assert first != second
    assert (second / "tiny" / "client.py").read_bytes() == b"app = 'second'\n"


def test_a_removed_install_is_installed_again(tmp_path: Path) -> None:
    # Prepare
    fab, flower = _bundle(), CountingInstall()
    folder = install_once(fab, tmp_path, install=flower)
    for path in sorted(folder.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()

    # Execute
    again = install_once(fab, tmp_path, install=flower)

    # Assert
    assert flower.calls == 2
    assert (again / "tiny" / "client.py").read_bytes() == b"app = None\n"


def test_a_bundle_whose_files_do_not_match_its_hash_list_is_refused(tmp_path: Path) -> None:
    # Prepare: the same bundle installed, then one with a file changed after it was hashed
    fab = _bundle()
    install_once(fab, tmp_path)
    tampered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(fab)) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "tiny/client.py":
                content = b"import os\napp = None\n"
            target.writestr(item, content)

    # Execute / Assert
    with pytest.raises(click.ClickException, match="hashes"):
        install_once(tampered.getvalue(), tmp_path)
    assert len(list((tmp_path / "apps" / RECORD_FOLDER).iterdir())) == 1


def test_the_clientapp_runner_installs_through_install_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: whatever this test changes is put back afterwards
    monkeypatch.setattr(runner, "install_from_fab", install_from_fab)

    # Execute
    replaced = install_bundles_once()
    again = install_bundles_once()

    # Assert
    assert replaced
    assert again
    assert vars(runner)["install_from_fab"] is install_once


def test_a_flower_whose_runner_installs_otherwise_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    def other(*args: Any, **kwargs: Any) -> Path:
        raise AssertionError("not called")

    monkeypatch.setattr(runner, "install_from_fab", other)

    # Execute
    replaced = install_bundles_once()

    # Assert
    assert not replaced
    assert vars(runner)["install_from_fab"] is other
    assert "left as it is" in caplog.text


def test_the_installed_modules_are_compiled_once(tmp_path: Path) -> None:
    # Prepare / Execute
    folder = install_once(_bundle(), tmp_path)

    # Assert: bytecode beside the modules, for processes that may not write it
    assert list((folder / "tiny" / "__pycache__").glob("client.*.pyc"))
