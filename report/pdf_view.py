"""The compliance report as a PDF, drawn with fpdf2 and its core (built-in) fonts.

Core fonts need no font file, so the PDF renders on any machine, but they only cover
Latin-1: :func:`to_latin1` transliterates common punctuation, strips accents that have
no Latin-1 form and replaces anything else with ``?``, so any input renders. The exact
text is in ``report.json`` and the HTML page.
"""

from __future__ import annotations

import io
import logging
import unicodedata
from datetime import UTC, datetime
from typing import Final

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace
from PIL import Image

from report.document import (
    STATUS_LABELS,
    Block,
    BulletList,
    Figure,
    Heading,
    Paragraph,
    ReportDocument,
    Table,
)

__all__ = ["render_document_pdf", "to_latin1"]

logger = logging.getLogger(__name__)

FONT: Final = "Helvetica"
MONO_FONT: Final = "Courier"
MAX_CELL_CHARS: Final = 700
MAX_FIGURE_HEIGHT_MM: Final = 120.0
DEFAULT_DPI: Final = 96.0
MM_PER_INCH: Final = 25.4
_RGB = tuple[int, int, int]
_COLOURS: Final[dict[str, _RGB]] = {
    "pass": (26, 127, 55),
    "fail": (180, 35, 24),
    "partial": (154, 103, 0),
    "not_evaluated": (87, 96, 106),
    "PASS": (26, 127, 55),
    "FAIL": (180, 35, 24),
    "INCOMPLETE": (154, 103, 0),
}
_GREY: Final[_RGB] = (87, 96, 106)
_TRANSLITERATION: Final = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u2022": "*",
        "\u00a0": " ",
        "\u2264": "<=",
        "\u2265": ">=",
        "\u2248": "~",
        "\u03b5": "epsilon",
        "\u03b4": "delta",
        "\u03b2": "beta",
    }
)


def to_latin1(text: str) -> str:
    """``text`` with every character a core PDF font can show (Latin-1), others replaced."""
    text = text.translate(_TRANSLITERATION)
    out = []
    for char in text:
        if ord(char) < 0x100:
            out.append(char if char.isprintable() or char in "\n" else " ")
            continue
        base = unicodedata.normalize("NFKD", char)
        base = "".join(c for c in base if not unicodedata.combining(c))
        out.append(base if base and all(ord(c) < 0x100 for c in base) else "?")
    return "".join(out)


class _ReportPdf(FPDF):
    """A4 portrait pages whose footer carries the JSON SHA-256 and the page number."""

    def __init__(self, json_sha256: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.json_sha256 = json_sha256

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=7)
        self.set_text_color(*_GREY)
        text = f"report.json SHA-256 {self.json_sha256[:16]}...  -  page {self.page_no()}/{{nb}}"
        self.cell(0, 5, text, align="C")
        self.set_text_color(0, 0, 0)


def render_document_pdf(document: ReportDocument) -> bytes:
    """The PDF bytes of ``document``."""
    pdf = _ReportPdf(document.json_sha256)
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_title(to_latin1(document.title))
    pdf.set_creator("fedembed")
    created = _parse_date(document.generated_at)
    if created is not None:
        pdf.set_creation_date(created)
    pdf.add_page()
    _header(pdf, document)
    for section in document.sections:
        _heading(pdf, f"{section.number} {section.title}", size=14, gap=6)
        for block in section.blocks:
            _block(pdf, block)
    return bytes(pdf.output())


def _header(pdf: FPDF, document: ReportDocument) -> None:
    pdf.set_font(FONT, "B", 18)
    _text(pdf, document.title, height=8)
    pdf.set_font(FONT, size=9)
    _text(
        pdf,
        f"Generated at {document.generated_at} by fedembed {document.fedembed_version} "
        f"(report format {document.report_version})",
    )
    pdf.ln(3)
    pdf.set_font(FONT, "B", 22)
    pdf.set_fill_color(*_COLOURS.get(document.verdict, _GREY))
    pdf.set_text_color(255, 255, 255)
    label = f"  Overall verdict: {document.verdict}  "
    pdf.cell(pdf.get_string_width(label), 13, label, fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.set_fill_color(255, 255, 255)
    pdf.set_font(FONT, size=9)
    pdf.ln(1)
    _text(pdf, document.verdict_summary)
    pdf.ln(2)
    _text(pdf, "SHA-256 of report.json:")
    pdf.set_font(MONO_FONT, size=8.5)
    _text(pdf, document.json_sha256)
    pdf.set_font(FONT, size=9)
    _text(pdf, document.verify_text.replace("`", ""))


def _block(pdf: FPDF, block: Block) -> None:
    if isinstance(block, Heading):
        _heading(pdf, block.text, size=11, gap=3)
    elif isinstance(block, Paragraph):
        pdf.set_font(MONO_FONT if block.code else FONT, size=9)
        _text(pdf, block.text)
        pdf.ln(1.5)
    elif isinstance(block, BulletList):
        pdf.set_font(FONT, size=9)
        for item in block.items:
            _text(pdf, f"- {item}")
        pdf.ln(1.5)
    elif isinstance(block, Table):
        _table(pdf, block)
    else:
        _figure(pdf, block)


def _heading(pdf: FPDF, text: str, *, size: float, gap: float) -> None:
    pdf.ln(gap)
    if pdf.will_page_break(30):  # keep a heading with what follows it
        pdf.add_page()
    pdf.set_font(FONT, "B", size)
    _text(pdf, text, height=size * 0.5)
    pdf.ln(1)


def _table(pdf: FPDF, table: Table) -> None:
    pdf.set_font(FONT, "I", 8.5)
    _text(pdf, table.caption)
    pdf.set_font(FONT, size=7.5)
    headings = FontFace(emphasis="BOLD", fill_color=(230, 234, 238))
    with pdf.table(
        col_widths=table.widths,
        text_align="LEFT",
        headings_style=headings,
        line_height=3.6,
        padding=1,
        cell_fill_mode="NONE",
    ) as rendered:
        heading_row = rendered.row()
        for header in table.headers:
            heading_row.cell(to_latin1(header))
        rows = table.rows or (("none",) + ("",) * (len(table.headers) - 1),)
        for row in rows:
            cells = rendered.row()
            for index, cell in enumerate(row):
                if index == table.status_column:
                    style = FontFace(emphasis="BOLD", color=_COLOURS.get(cell, _GREY))
                    cells.cell(STATUS_LABELS.get(cell, to_latin1(cell)), style=style)
                else:
                    cells.cell(_cell_text(cell))
    pdf.ln(3)


def _figure(pdf: FPDF, figure: Figure) -> None:
    with Image.open(io.BytesIO(figure.png)) as image:
        pixels_wide, pixels_high = image.size
        dpi = float(image.info.get("dpi", (DEFAULT_DPI, DEFAULT_DPI))[0]) or DEFAULT_DPI
    width = pixels_wide / dpi * MM_PER_INCH
    scale = min(1.0, pdf.epw / width, MAX_FIGURE_HEIGHT_MM / (pixels_high / dpi * MM_PER_INCH))
    pdf.image(io.BytesIO(figure.png), w=width * scale, alt_text=to_latin1(figure.alt))
    pdf.set_font(FONT, "B", 8.5)
    _text(pdf, figure.title)
    if figure.caption:
        pdf.set_font(FONT, size=8.5)
        _text(pdf, figure.caption)
    pdf.ln(3)


def _text(pdf: FPDF, text: str, *, height: float = 4.5) -> None:
    pdf.multi_cell(0, height, to_latin1(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _cell_text(text: str) -> str:
    text = to_latin1(text)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 3] + "..."


def _parse_date(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        logger.debug("generated_at %r is not ISO 8601; the PDF gets today's date", text)
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
