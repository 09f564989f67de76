"""Lazily re-exported package names resolve to the submodules' own objects."""

from __future__ import annotations

import importlib

import pytest

LAZY_PACKAGES = ("attacks", "audit", "embedding_core", "report", "secure_index.service")


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_exported_name_resolves_to_its_definition(package: str) -> None:
    # Prepare
    module = importlib.import_module(package)
    # Execute / Assert: each name is its submodule's object and is listed by dir().
    for name in module.__all__:
        value = getattr(module, name)
        home = importlib.import_module(f"{package}.{module._SUBMODULE[name]}")
        assert value is getattr(home, name), name
        assert name in dir(module)
    assert set(module._SUBMODULE) == set(module.__all__)


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018
