"""Lazy re-exports for a package's ``__init__`` (PEP 562 module ``__getattr__``).

A package that re-exports its submodules' names would otherwise import all of them, and
with them torch, scikit-learn or FastAPI, whenever any one name or submodule is used
(``fedembed --help`` included). The package lists where each name lives; the name's
submodule is imported on first access and the value cached in the package namespace.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, submodule_of: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, which re-exports ``submodule_of``.

    Args:
        package: The package's ``__name__`` (call this from its ``__init__``).
        submodule_of: Exported name -> submodule (relative to ``package``) defining it.
    """
    namespace = sys.modules[package].__dict__

    def get_export(name: str) -> Any:
        module = submodule_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def list_exports() -> list[str]:
        return sorted(set(namespace) | set(submodule_of))

    return get_export, list_exports
