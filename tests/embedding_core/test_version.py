"""The product version is the installed distribution's, read from its metadata."""

from __future__ import annotations

from importlib.metadata import version

from embedding_core.version import DISTRIBUTION, PRODUCT_VERSION


def test_product_version_is_the_installed_distributions() -> None:
    # Execute / Assert: the test environment installs fedembed (editable), so the
    # metadata is there and the source-tree fallback is not what is reported.
    assert version(DISTRIBUTION) == PRODUCT_VERSION
    assert PRODUCT_VERSION.split(".")[0].isdigit()
