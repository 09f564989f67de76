"""fedembed: privacy-preserving federated embeddings.

This package holds the distribution's single entry point (the ``fedembed`` CLI) and
the main job (``fedembed demo``); the components live in their own top-level
packages (``embedding_core``, ``client_node``, ``coordinator``, ``secure_index``,
``attacks``, ``policies``, ``audit``, ``report``). The product version is
``embedding_core.version.PRODUCT_VERSION``.
"""
