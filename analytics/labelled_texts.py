"""A member's records for analysis: texts, with an optional label column.

Reads the formats :func:`embedding_core.data.load_documents` reads (JSON lines, CSV, TSV,
Parquet). Ids are optional (``id_column=None``: the line or row number), since exports
such as BANKING77's ``text,category`` carry none. Every problem is a
:class:`~embedding_core.errors.DataFormatError` naming the file, the line and the flag
that fixes it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from embedding_core.data import load_documents
from embedding_core.errors import DataFormatError

__all__ = ["LabelledTexts", "load_labelled_texts"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledTexts:
    """Records in file order.

    Attributes:
        path: The file they were read from.
        ids: Each record's id (its line or row number when the file has no id column).
        texts: Each record's text.
        labels: Each record's label, as a string; ``None`` when no label column was named.
    """

    path: Path
    ids: list[str]
    texts: list[str]
    labels: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def class_counts(self) -> Counter[str]:
        """Records per label (empty when unlabelled)."""
        return Counter(self.labels or [])

    def require_labels(self, *, flag: str = "--label-column") -> list[str]:
        """The labels, or a clear error when the records carry none."""
        if self.labels is None:
            raise DataFormatError(
                self.path,
                0,
                "no label column was named",
                expected="a column holding each record's class",
                fix=f"pass {flag} naming it (e.g. {flag} category)",
            )
        return self.labels


def load_labelled_texts(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str | None = None,
    id_column: str | None = None,
) -> LabelledTexts:
    """Load the records of ``path``; ``label_column`` must then be in every record.

    Raises:
        DatasetNotFoundError: The file does not exist.
        DataFormatError: Unknown format, a missing column, an empty text or label, a
            duplicate id, or no records at all.
    """
    documents = load_documents(path, id_column=id_column, text_column=text_column)
    file_path = Path(path).expanduser()
    labels: list[str] | None = None
    if label_column is not None:
        labels = []
        for document in documents:
            value = document.metadata.get(label_column)
            if value is None or not str(value).strip():
                columns = sorted({text_column, *document.metadata} - {label_column})
                problem = (
                    f"record {document.id!r} has no {label_column!r} column "
                    f"(its columns: {', '.join(repr(c) for c in columns)})"
                    if label_column not in document.metadata
                    else f"record {document.id!r} has an empty label in {label_column!r}"
                )
                raise DataFormatError(
                    file_path,
                    int(document.id) if id_column is None else 0,
                    problem,
                    expected=f"a non-empty class in column {label_column!r} on every record",
                    fix="pass --label-column naming the column that holds the class, "
                    "or fill in the missing labels",
                )
            labels.append(str(value).strip())
    logger.info(
        "analytics: %d records from %s (%s)",
        len(documents),
        file_path.name,
        "unlabelled" if labels is None else f"{len(set(labels))} labels",
    )
    return LabelledTexts(
        path=file_path,
        ids=[d.id for d in documents],
        texts=[d.text for d in documents],
        labels=labels,
    )
