"""The compliance report as one self-contained, script-free HTML page.

The page needs nothing outside itself: the CSS is inline, figures are ``data:`` PNGs and
a Content-Security-Policy meta tag forbids every other source, so it opens offline, in
an archive or an air-gapped review. Every string from the results is escaped with
:func:`html.escape` (the results carry text an attacker recovered, which may be markup).
"""

from __future__ import annotations

import base64
import html
from typing import Final

from report.document import (
    STATUS_LABELS,
    Block,
    BulletList,
    Figure,
    Heading,
    Paragraph,
    ReportDocument,
    Section,
    Table,
)

__all__ = ["CONTENT_SECURITY_POLICY", "VERDICT_ELEMENT_ID", "render_document_html"]

CONTENT_SECURITY_POLICY: Final = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
VERDICT_ELEMENT_ID: Final = "verdict"
PNG_DATA_PREFIX: Final = "data:image/png;base64,"

_CSS: Final = """
:root { --pass: #1a7f37; --fail: #b42318; --partial: #9a6700; --none: #57606a; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  color: #1f2328; line-height: 1.45; margin: 0 auto; max-width: 1100px; padding: 1.5rem; }
header { border-bottom: 2px solid #d0d7de; margin-bottom: 1.5rem; padding-bottom: 1rem; }
h1 { font-size: 1.8rem; margin: 0 0 .5rem; }
h2 { font-size: 1.35rem; border-bottom: 1px solid #d0d7de; padding-bottom: .25rem;
  margin-top: 2rem; }
h3 { font-size: 1.1rem; margin-top: 1.25rem; }
.meta { color: #57606a; margin: .2rem 0; }
.verdict { display: inline-block; font-size: 2.2rem; font-weight: 800; letter-spacing: .05em;
  color: #fff; padding: .3rem 1.2rem; border-radius: .4rem; margin: .6rem 0 .3rem; }
.verdict-PASS { background: var(--pass); }
.verdict-FAIL { background: var(--fail); }
.verdict-INCOMPLETE { background: var(--partial); }
code, .code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: .9em; overflow-wrap: anywhere; }
.hash { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: .3rem;
  padding: .4rem .6rem; display: block; margin: .3rem 0; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left;
  vertical-align: top; overflow-wrap: break-word; }
th { background: #f6f8fa; }
.badge { display: inline-block; font-weight: 700; font-size: .8rem; color: #fff;
  padding: .1rem .45rem; border-radius: .25rem; white-space: nowrap; }
.badge-pass { background: var(--pass); }
.badge-fail { background: var(--fail); }
.badge-partial { background: var(--partial); }
.badge-not_evaluated { background: var(--none); }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: .9rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  tr, figure, img { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  .verdict, .badge, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .badge, .verdict { border: 1px solid #000; }
}
"""


def render_document_html(document: ReportDocument) -> str:
    """The whole HTML page for ``document`` (a UTF-8 string, no scripts, no external URL)."""
    esc = html.escape
    title = esc(document.title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CONTENT_SECURITY_POLICY)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{title}</h1>",
        f'<p class="meta">Generated at {esc(document.generated_at)} by fedembed '
        f"{esc(document.fedembed_version)} (report format {esc(document.report_version)})</p>",
        '<p class="meta">Overall verdict:</p>',
        f'<p id="{VERDICT_ELEMENT_ID}" class="verdict verdict-{esc(document.verdict)}" '
        f'role="status">{esc(document.verdict)}</p>',
        f'<p class="meta">{esc(document.verdict_summary)}</p>',
        "<p>SHA-256 of report.json:</p>",
        f'<code class="hash" id="json-sha256">{esc(document.json_sha256)}</code>',
        f"<p>{_inline_code(document.verify_text)}</p>",
        _contents(document.sections),
        "</header>",
        "<main>",
    ]
    parts.extend(_section(section) for section in document.sections)
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _contents(sections: tuple[Section, ...]) -> str:
    items = "".join(f"<li>{html.escape(s.title)}</li>" for s in sections)
    return f'<nav aria-label="Contents"><ol>{items}</ol></nav>'


def _section(section: Section) -> str:
    body = "\n".join(_block(block) for block in section.blocks)
    heading = f"{section.number} {html.escape(section.title)}"
    anchor = html.escape(section.anchor)
    return (
        f'<section id="{anchor}" aria-labelledby="{anchor}-h">\n'
        f'<h2 id="{anchor}-h">{heading}</h2>\n{body}\n</section>'
    )


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h3>{html.escape(block.text)}</h3>"
    if isinstance(block, Paragraph):
        if block.code:
            return f'<p class="code">{html.escape(block.text)}</p>'
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, BulletList):
        items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Table):
        return _table(block)
    return _figure(block)


def _table(table: Table) -> str:
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in table.headers)
    rows = []
    for row in table.rows:
        cells = []
        for index, cell in enumerate(row):
            if index == table.status_column:
                label = html.escape(STATUS_LABELS.get(cell, cell))
                cells.append(
                    f'<td><span class="badge badge-{html.escape(cell)}">{label}</span></td>'
                )
            else:
                cells.append(f"<td>{html.escape(cell)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{len(table.headers)}">none</td></tr>')
    body = "\n".join(rows)
    return (
        f"<table>\n<caption>{html.escape(table.caption)}</caption>\n"
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
    )


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    caption = html.escape(figure.title)
    if figure.caption:
        caption += f". {html.escape(figure.caption)}"
    return (
        f'<figure>\n<img src="{PNG_DATA_PREFIX}{data}" alt="{html.escape(figure.alt)}">\n'
        f"<figcaption>{caption}</figcaption>\n</figure>"
    )


def _inline_code(text: str) -> str:
    """Escape ``text`` and show the spans between backticks as ``<code>``."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
