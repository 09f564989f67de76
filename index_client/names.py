r"""The one rule for every name that reaches a path, a URL or a folder.

A collection's name is a folder of the store (``collections/<name>/``, ``ckks/<name>/``)
and a segment of the gateway's and the store's URLs; a node's name (the owner of its
uploads) is a segment of the store's CKKS block URLs and an owner filter; a partner's
name sits beside node names in the key records and the audit log. All of them follow
:data:`NAME_RULE`: 1 to 64 characters from ``A-Z a-z 0-9 _ -``, the first a letter or a
digit. So a name is never ``.`` or ``..``, never holds ``/``, ``\\``, ``%``, a space or
a control character, never starts with ``-`` (a command line would read it as a flag),
and means the same on every file system, in every URL and on every command line.

Document ids are opaque, never a folder or a URL segment (they travel in JSON bodies;
CKKS block files are named by a hash): :data:`DOC_ID_PATTERN` only keeps them short and
free of text.

The CLIs check their options with :func:`option_check`, the services their path
parameters and JSON fields with :func:`name_problem`, the index refuses with
:func:`check_name`, and :meth:`index_client.routes.Route.path` refuses a name before
it builds a URL, so no layer depends on another having checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from embedding_core.errors import FedembedError

__all__ = [
    "COLLECTION",
    "DOC_ID_PATTERN",
    "DOC_ID_RE",
    "DOC_ID_RULE",
    "NAME_MAX_CHARS",
    "NAME_PATTERN",
    "NAME_RE",
    "NAME_RULE",
    "NODE",
    "PARTNER",
    "InvalidNameError",
    "check_name",
    "is_name",
    "name_problem",
    "option_check",
    "shown",
]

NAME_MAX_CHARS = 64
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A name, matched with ``fullmatch`` (or ``match`` with ``\\Z`` appended)."""
NAME_PATTERN = rf"^{NAME_RE.pattern}$"
"""The same rule anchored, for JSON schemas and pydantic ``pattern`` constraints."""
NAME_RULE = (
    f"1 to {NAME_MAX_CHARS} characters from A-Z, a-z, 0-9, '_' and '-', "
    "the first a letter or a digit"
)
DOC_ID_RE = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")
"""An opaque document id, matched with ``fullmatch``."""
DOC_ID_PATTERN = rf"^{DOC_ID_RE.pattern}$"
DOC_ID_RULE = "1 to 128 characters from A-Z a-z 0-9 _ . : @ / -"

COLLECTION = "collection name"
NODE = "node name"
PARTNER = "partner name"
_EXAMPLES = {COLLECTION: "'claims-2026'", NODE: "'hospital-a'", PARTNER: "'insurer-x'"}
_SHOWN_CHARS = 40


class InvalidNameError(FedembedError, ValueError):
    """A collection, node or partner name breaks :data:`NAME_RULE`."""


def shown(value: object) -> str:
    """``value`` quoted for a message, cut to its first 40 characters."""
    text = str(value)
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"


def name_problem(value: object) -> str | None:
    """Why ``value`` is not a name (e.g. ``"it contains '/'"``), or None if it is one."""
    if not isinstance(value, str):
        return f"it is not a string (got {type(value).__name__})"
    if NAME_RE.fullmatch(value):
        return None
    if not value:
        return "it is empty"
    if value in {".", ".."}:
        return "'.' and '..' are reserved: they name folders"
    if len(value) > NAME_MAX_CHARS:
        return f"it has {len(value)} characters, more than {NAME_MAX_CHARS}"
    for char in value:
        if char in "/\\":
            return f"it contains {char!r}, which separates path segments"
        if not char.isprintable():
            return "it contains a control character"
        if char.isspace():
            return "it contains a space"
        if not NAME_RE.fullmatch(f"a{char}"):
            return f"it contains {char!r}"
    return f"it starts with {value[0]!r}"


def is_name(value: object) -> bool:
    """Whether ``value`` follows :data:`NAME_RULE`."""
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def _fix(what: str) -> str:
    example = _EXAMPLES.get(what, "'claims-2026'")
    return f"choose a {what} such as {example}"


def check_name(value: object, what: str = COLLECTION) -> str:
    """``value`` if it is a name, else :class:`InvalidNameError` naming ``what`` it is.

    Raises:
        InvalidNameError: Saying what is wrong, the rule and an example.
    """
    problem = name_problem(value)
    if problem is not None:
        raise InvalidNameError(
            f"{what} {shown(value)} is not allowed: {problem}",
            expected=NAME_RULE,
            fix=_fix(what),
        )
    assert isinstance(value, str)
    return value


def option_check(
    what: str, error: Callable[[str], Exception], *, wildcard: str | None = None
) -> Callable[[Any], Any]:
    """A command-line option callback (typer, click) that refuses values that are not names.

    Args:
        what: What the option names (:data:`COLLECTION`, :data:`NODE`, :data:`PARTNER`).
        error: The CLI's usage error (``typer.BadParameter``): it prints the flag, the
            message and the usage, never a traceback.
        wildcard: A value allowed besides names (``"*"`` for every collection).

    Returns:
        The callback: it passes a name, a list of names or None through unchanged.
    """

    def check(value: Any) -> Any:
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None or (wildcard is not None and item == wildcard):
                continue
            problem = name_problem(item)
            if problem is not None:
                also = f" (or {wildcard!r})" if wildcard is not None else ""
                raise error(
                    f"{shown(item)} is not a {what}: {problem}. "
                    f"Expected {NAME_RULE}{also}; {_fix(what)}"
                )
        return value

    return check
