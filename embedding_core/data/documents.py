"""Loading a user's own documents from JSON lines, CSV, TSV or Parquet.

Every problem is reported as a :class:`~embedding_core.errors.DataFormatError` that
names the file and the line (or, for Parquet, the row), says what was expected and how
to fix it.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedding_core.errors import DataFormatError, DatasetNotFoundError

__all__ = [
    "SUPPORTED_FORMATS",
    "Document",
    "iter_jsonl",
    "iter_text_lines",
    "load_documents",
]

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}
"""File suffix -> format name understood by :func:`load_documents`."""

_FORMAT_NAMES = ("jsonl", "ndjson", "csv", "tsv", "parquet")
_CSV_FIELD_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Document:
    """One document to embed.

    Attributes:
        id: The document's unique id.
        text: The text to embed.
        metadata: The record's other fields.
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def iter_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    r"""Yield ``(line_number, line)`` for each line of a UTF-8 text file.

    Line breaks and a leading byte-order mark are removed. Only ``\n`` (and ``\r\n``)
    end a line, so texts holding other Unicode line separators stay whole.

    Args:
        path: The file to read.

    Yields:
        The 1-based line number and the line's text.

    Raises:
        DataFormatError: A line is not valid UTF-8.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    path,
                    number,
                    f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    expected="UTF-8 text",
                    fix=f"re-save {path.name} as UTF-8",
                ) from exc
            if number == 1:
                line = line.removeprefix("\ufeff")
            yield number, line.rstrip("\r\n")


def iter_jsonl(
    path: Path, *, what: str = "one JSON object per line"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON lines file.

    Args:
        path: The file to read.
        what: What each line should hold, for error messages.

    Yields:
        The 1-based line number and the decoded JSON object.

    Raises:
        DataFormatError: A line is not valid UTF-8, not valid JSON or not an object.
    """
    fix = f"fix or remove the line so that {path.name} has {what}"
    for number, line in iter_text_lines(path):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                path,
                number,
                f"invalid JSON ({exc.msg} at column {exc.colno})",
                expected=what,
                fix=fix,
            ) from exc
        if not isinstance(value, dict):
            raise DataFormatError(
                path,
                number,
                f"the line holds a JSON {type(value).__name__}, not an object",
                expected=what,
                fix=fix,
            )
        yield number, value


def _coerce_id(value: object) -> str | None:
    """Return ``value`` as an id string, or ``None`` if it cannot be an id."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        text = str(value)
        return text if text.strip() else None
    return None


class _Builder:
    """Validate records one by one and collect the documents."""

    def __init__(self, path: Path, id_column: str | None, text_column: str, unit: str) -> None:
        self.path = path
        self.id_column = id_column  # None: each record's line (or row) number is its id
        self.text_column = text_column
        self.columns = [c for c in (id_column, text_column) if c is not None]
        self.unit = unit  # "line" or "row"
        self.documents: list[Document] = []
        self.first_seen: dict[str, int] = {}

    def _error(self, number: int, problem: str, *, expected: str, fix: str) -> DataFormatError:
        if self.unit == "row" and number > 0:
            problem = f"row {number}: {problem}"
        return DataFormatError(self.path, number, problem, expected=expected, fix=fix)

    def missing_columns(self, number: int, columns: list[str], where: str) -> DataFormatError:
        missing = [c for c in self.columns if c not in columns]
        wanted = f"a text column {self.text_column!r}"
        if self.id_column is not None:
            wanted = f"an id column {self.id_column!r} and {wanted}"
        return self._error(
            number,
            f"no column {', '.join(repr(c) for c in missing)}; {where} "
            f"{', '.join(repr(c) for c in columns) or 'no columns'}",
            expected=wanted,
            fix="pass --id-column/--text-column naming the columns that hold them",
        )

    def lacks_columns(self, columns: Iterable[str]) -> bool:
        """Whether a header or record misses the id or the text column."""
        present = set(columns)
        return any(c not in present for c in self.columns)

    def add(self, number: int, record: dict[str, Any]) -> None:
        if self.lacks_columns(record):
            raise self.missing_columns(number, list(record), "the record has")
        raw_id = number if self.id_column is None else record[self.id_column]
        doc_id = _coerce_id(raw_id)
        if doc_id is None:
            raise self._error(
                number,
                f"the id {raw_id!r} in column {self.id_column!r} is null, empty or not a scalar",
                expected="a non-empty string or number as id",
                fix=f"give every {self.unit} an id, or pass --id-column naming the right column",
            )
        text = record[self.text_column]
        if not isinstance(text, str):
            raise self._error(
                number,
                f"the text in column {self.text_column!r} is {type(text).__name__}, not a string",
                expected="a non-empty string as text",
                fix="store the text as a string, or pass --text-column naming the right column",
            )
        if not text.strip():
            raise self._error(
                number,
                f"the text of document {doc_id!r} is empty",
                expected="a text with at least one non-space character",
                fix=f"remove the {self.unit} or fill in its text",
            )
        if doc_id in self.first_seen:
            raise self._error(
                number,
                f"duplicate id {doc_id!r} (first seen on {self.unit} {self.first_seen[doc_id]})",
                expected="unique document ids",
                fix=f"remove or rename one of the two {self.unit}s",
            )
        self.first_seen[doc_id] = number
        metadata = {k: v for k, v in record.items() if k not in (self.id_column, self.text_column)}
        self.documents.append(Document(id=doc_id, text=text, metadata=metadata))


def _read_jsonl(path: Path, builder: _Builder) -> None:
    for number, record in iter_jsonl(path, what="one JSON object per line with an id and a text"):
        builder.add(number, record)


def _read_delimited(path: Path, builder: _Builder, delimiter: str) -> None:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    kind = "TSV" if delimiter == "\t" else "CSV"
    fix = f"make {path.name} valid {kind} with a header line"
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header: list[str] | None = None
            previous_end = 0
            for row in reader:
                start = previous_end + 1
                previous_end = reader.line_num
                if not row:
                    continue
                if header is None:
                    header = row
                    duplicates = sorted({c for c in header if header.count(c) > 1})
                    if duplicates:
                        raise DataFormatError(
                            path,
                            start,
                            f"duplicate column name(s) {duplicates} in the header",
                            expected="unique column names",
                            fix="rename the duplicate columns",
                        )
                    if builder.lacks_columns(header):
                        raise builder.missing_columns(start, header, "the header has")
                    continue
                if len(row) != len(header):
                    raise DataFormatError(
                        path,
                        start,
                        f"the row has {len(row)} fields but the header has {len(header)}",
                        expected=f"{len(header)} {kind} fields per row",
                        fix=f"quote fields that contain the delimiter or line breaks; {fix}",
                    )
                builder.add(start, dict(zip(header, row, strict=True)))
    except csv.Error as exc:
        raise DataFormatError(
            path, previous_end, f"unreadable {kind} ({exc})", expected=f"valid {kind}", fix=fix
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            path,
            0,
            f"not valid UTF-8 ({exc.reason})",
            expected="UTF-8 text",
            fix=f"re-save {path.name} as UTF-8",
        ) from exc


def _read_parquet(path: Path, builder: _Builder) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataFormatError(
            path,
            0,
            f"unreadable Parquet file ({exc})",
            expected="a valid Parquet file",
            fix=f"re-export {path.name} as Parquet, or use JSON lines or CSV",
        ) from exc
    columns = list(table.column_names)
    if builder.lacks_columns(columns):
        raise builder.missing_columns(0, columns, "the table has")
    for index, record in enumerate(table.to_pylist()):
        builder.add(index + 1, record)


def _detect_format(path: Path, file_format: str | None) -> str:
    if file_format is not None:
        name = file_format.lower().lstrip(".")
        if name not in _FORMAT_NAMES:
            raise DataFormatError(
                path,
                0,
                f"unknown format {file_format!r}",
                expected=f"one of {', '.join(_FORMAT_NAMES)}",
                fix="pass one of the supported formats",
            )
        return "jsonl" if name == "ndjson" else name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_FORMATS:
        raise DataFormatError(
            path,
            0,
            f"cannot tell the format from the suffix {suffix or '(none)'!r}",
            expected=f"a file ending in {', '.join(SUPPORTED_FORMATS)}",
            fix="rename the file, or pass the format explicitly (--format jsonl|csv|tsv|parquet)",
        )
    return SUPPORTED_FORMATS[suffix]


def load_documents(
    path: str | Path,
    *,
    id_column: str | None = "id",
    text_column: str = "text",
    file_format: str | None = None,
) -> list[Document]:
    """Load documents from a JSON lines, CSV, TSV or Parquet file.

    Fields other than the id and text columns go to :attr:`Document.metadata`. Ids are
    converted to strings. Texts are kept as they are.

    Args:
        path: The file to read.
        id_column: The field holding each document's unique id; ``None``: the record's
            line number (row number for Parquet) is its id.
        text_column: The field holding each document's text.
        file_format: ``"jsonl"`` (or ``"ndjson"``), ``"csv"``, ``"tsv"`` or
            ``"parquet"``; by default taken from the file's suffix.

    Returns:
        The documents, in file order.

    Raises:
        DatasetNotFoundError: The file does not exist.
        DataFormatError: The format is unknown, or a record is malformed (bad JSON,
            missing id or text column, null id, empty text, duplicate id), or the file
            holds no documents.
    """
    file_path = Path(path).expanduser()
    if not file_path.is_file():
        state = "is not a file" if file_path.exists() else "does not exist"
        raise DatasetNotFoundError(
            f"the documents file {file_path} {state}",
            expected="a .jsonl, .ndjson, .csv, .tsv or .parquet file",
            fix="check the path you passed",
        )
    fmt = _detect_format(file_path, file_format)
    unit = "row" if fmt == "parquet" else "line"
    builder = _Builder(file_path, id_column, text_column, unit)
    if fmt == "jsonl":
        _read_jsonl(file_path, builder)
    elif fmt == "parquet":
        _read_parquet(file_path, builder)
    else:
        _read_delimited(file_path, builder, "\t" if fmt == "tsv" else ",")
    if not builder.documents:
        raise DataFormatError(
            file_path,
            0,
            "the file holds no documents",
            expected=f"at least one record with {' and '.join(repr(c) for c in builder.columns)}",
            fix="check that you passed the right file",
        )
    logger.info("loaded %d documents from %s", len(builder.documents), file_path)
    return builder.documents
