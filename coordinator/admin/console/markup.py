"""HTML built from escaped parts: every value is text unless it is already :class:`Html`.

The console writes no template language: pages are composed with :func:`tag`, which
escapes every attribute value and every child that is not :class:`Html`, so a member,
run or partner name holding ``<script>`` is shown as text, never run.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

__all__ = ["Child", "Html", "escape", "join", "tag"]


class Html(str):
    """Text that is already HTML (built by :func:`tag` or :func:`escape`): never escaped again."""

    __slots__ = ()


Child = Html | str | int | float | None
"""What a tag may hold: markup, text to escape, a number, or nothing (skipped)."""

_VOID = frozenset({"br", "hr", "img", "input", "link", "meta"})
_SVG_SELF_CLOSING = frozenset({"circle", "line", "path", "polyline", "rect"})


def escape(value: Child) -> Html:
    """``value`` as HTML text: markup kept, anything else escaped (quotes included)."""
    if value is None:
        return Html("")
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Child], separator: str = "") -> Html:
    """Several parts as one piece of markup (each escaped unless it is markup)."""
    return Html(escape(separator).join(escape(part) for part in parts))


def _attribute(name: str, value: str | int | float | bool | None) -> str:
    key = name.rstrip("_").replace("_", "-")
    if value is None or value is False:
        return ""
    if value is True:
        return f" {key}"
    return f' {key}="{escape(value)}"'


def tag(element: str, /, *children: Child, **attributes: str | int | float | bool | None) -> Html:
    """``<element attributes>children</element>``: attribute values and text children escaped.

    Attribute names take Python spellings: ``class_`` is ``class``, ``aria_label`` is
    ``aria-label``; a value of None or False leaves the attribute out, True writes it bare.
    """
    attrs = "".join(_attribute(key, value) for key, value in attributes.items())
    if element in _SVG_SELF_CLOSING and not any(child is not None for child in children):
        return Html(f"<{element}{attrs}/>")
    if element in _VOID:
        return Html(f"<{element}{attrs}>")
    return Html(f"<{element}{attrs}>{join(children)}</{element}>")
