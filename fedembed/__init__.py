"""fedembed: privacy-preserving federated embeddings.

This package holds the distribution's single entry point (the ``fedembed`` CLI) and
the main job (``fedembed demo``); the components live in their own top-level
packages (``embedding_core``, ``client_node``, ``coordinator``, ``secure_index``,
``attacks``, ``policies``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fedembed")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
