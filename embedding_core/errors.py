"""Errors raised by fedembed for a user's mistake.

Every error says what was wrong, what was expected and how to fix it, so that the
CLI and the services can show it to the user as it is (no traceback, no 500).
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AdapterError",
    "DataFormatError",
    "DatasetNotFoundError",
    "FedembedError",
    "ModelNotFoundError",
]


class FedembedError(Exception):
    """Base class of the errors a user can act on.

    Args:
        problem: What was wrong, in one sentence.
        expected: What fedembed expected instead.
        fix: How the user fixes it.
    """

    def __init__(self, problem: str, *, expected: str = "", fix: str = "") -> None:
        self.problem = problem
        self.expected = expected
        self.fix = fix
        parts = [problem.rstrip(".") + "."]
        if expected:
            parts.append(f"Expected: {expected.rstrip('.')}.")
        if fix:
            parts.append(f"Fix: {fix.rstrip('.')}.")
        super().__init__(" ".join(parts))


class ModelNotFoundError(FedembedError):
    """The embedding model could not be found or loaded."""


class AdapterError(FedembedError):
    """An adapter file is missing, corrupt or does not fit the encoder."""


class DatasetNotFoundError(FedembedError):
    """A dataset directory or file does not exist."""


class DataFormatError(FedembedError):
    """A data file is malformed.

    The message starts with ``path:line:`` (line 0 when the problem concerns the whole
    file) so editors and terminals can jump to it.
    """

    def __init__(
        self,
        path: str | Path,
        line: int,
        problem: str,
        *,
        expected: str = "",
        fix: str = "",
    ) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line > 0 else f"{self.path}"
        super().__init__(f"{where}: {problem}", expected=expected, fix=fix)
