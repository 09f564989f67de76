"""Logging set-up for fedembed's entry points (CLI, Flower ServerApp and ClientApp).

Library modules only call ``logging.getLogger(__name__)``; the process entry points
configure handlers once, here.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]

_NOISY = ("httpx", "urllib3", "filelock", "sentence_transformers", "transformers")


def configure_logging(level: int = logging.INFO, *, force: bool = False) -> None:
    """Log to stderr at ``level`` unless the process already configured logging."""
    if force or not logging.getLogger().handlers:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
            force=force,
        )
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
