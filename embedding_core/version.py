"""The product's version, as installed (``fedembed`` distribution metadata).

Every floor reads it from here: the ``fedembed --version`` flag prints it and the audit
stamps it on its report. A source tree that was never installed has no metadata and
reports ``"0.0.0"``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

__all__ = ["DISTRIBUTION", "PRODUCT_VERSION", "SOURCE_TREE_VERSION"]

DISTRIBUTION: Final = "fedembed"
SOURCE_TREE_VERSION: Final = "0.0.0"


def _installed_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return SOURCE_TREE_VERSION


PRODUCT_VERSION: Final = _installed_version()
