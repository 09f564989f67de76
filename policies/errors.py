"""Errors raised for a policy file or policy input that cannot be used."""

from __future__ import annotations

from pathlib import Path

from embedding_core.errors import FedembedError

__all__ = ["PolicyError"]


class PolicyError(FedembedError):
    """A policy file (or evidence evaluated against it) is invalid.

    The message starts with the file (and line, for TOML syntax errors) so editors and
    terminals can jump to it, and names the TOML key path (e.g. ``audit.max_mia_auc``).

    Args:
        problem: What was wrong, in one sentence.
        path: The policy file concerned, if any.
        key: The TOML key path concerned (the first one when there are several).
        keys: Every key path concerned; defaults to ``(key,)``.
        line: Line of a TOML syntax error (1-based), if known.
        expected: What fedembed expected instead.
        fix: How the user fixes it.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        key: str | None = None,
        keys: tuple[str, ...] = (),
        line: int | None = None,
        expected: str = "",
        fix: str = "",
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.key = key
        self.keys = keys or ((key,) if key else ())
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line else f"{self.path}: "
        super().__init__(f"{where}{problem}", expected=expected, fix=fix)
