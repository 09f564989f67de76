"""The auditor's own files, read and checked in the words of the flags that name them.

An auditor aims the audit's attacks at what their regulator asks about (the embedding and
the use of these records: :mod:`audit.auditor_data`):

- ``--attribute-data FILE --attribute-label COL [--attribute-text COL]``: labelled
  records (CSV, TSV, JSON lines or Parquet, read by
  :func:`analytics.load_labelled_texts`), the attribute the attacks infer.
- ``--target-records FILE [--target-text COL]``: the texts the inversion attacks try to
  recover.
- ``--membership-records FILE --membership-documents FILE``: interactions in the node
  format (``{"query_id", "query", "doc_id"}`` JSON lines, as
  :mod:`client_node.node_data` reads them) and the documents they point at (``{"id",
  "text"}``): the record pool of the membership game.

:func:`read_auditor_records` reads and checks every file before any attack runs; every
problem is a :class:`~embedding_core.errors.FedembedError` naming the flag that fixes it
(the CLI prints it on one line and exits 2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytics import load_labelled_texts
from audit.config import AuditInputs
from embedding_core.data import load_documents
from embedding_core.data.documents import iter_jsonl
from embedding_core.errors import DataFormatError, DatasetNotFoundError, FedembedError

__all__ = [
    "MIN_ATTRIBUTE_RECORDS",
    "MIN_MEMBERSHIP_DOCUMENTS",
    "MIN_MEMBERSHIP_RECORDS",
    "AuditorRecords",
    "read_auditor_inputs",
    "read_auditor_records",
]

logger = logging.getLogger(__name__)

# Each half needs two classes, and the probe's accuracy a few targets to mean anything.
MIN_ATTRIBUTE_RECORDS = 10
# The membership game (attacks.membership_game.play_game) trains every shadow and target
# model on a random half of the pool and scores IN against OUT records: with 16 records a
# shadow's half is empty with probability 2^-16 and each target has 8 IN and 8 OUT.
MIN_MEMBERSHIP_RECORDS = 16
MIN_MEMBERSHIP_DOCUMENTS = 2  # the softmax needs a relevant document and another
_INTERACTION_KEYS = ("query_id", "query", "doc_id")


@dataclass(frozen=True)
class AuditorRecords:
    """The auditor's files, read and checked (texts only; nothing embedded yet)."""

    attribute_path: Path | None = None
    attribute_label: str | None = None
    attribute_texts: list[str] | None = None
    attribute_labels: list[str] | None = None
    target_path: Path | None = None
    target_texts: list[str] | None = None
    membership_path: Path | None = None
    documents_path: Path | None = None
    membership_queries: list[str] | None = None
    membership_positive: list[int] | None = None
    document_texts: list[str] | None = None


def _flagged(exc: FedembedError, flag: str, renames: dict[str, str]) -> FedembedError:
    """``exc`` restated for the CLI: the flag named, its column options renamed."""
    words = {
        **renames,
        "the path you passed": f"the path given to {flag}",
        "naming the columns that hold them": "naming the right column",
    }

    def say(text: str) -> str:
        for old, new in words.items():
            text = text.replace(old, new)
        return text

    if isinstance(exc, DataFormatError):
        where = f"{exc.path}:{exc.line}" if exc.line > 0 else f"{exc.path}"
        problem = exc.problem.removeprefix(f"{where}: ")
        return DataFormatError(
            exc.path,
            exc.line,
            f"{say(problem)} (the file given to {flag})",
            expected=say(exc.expected),
            fix=say(exc.fix),
        )
    return type(exc)(f"{flag}: {say(exc.problem)}", expected=say(exc.expected), fix=say(exc.fix))


def _unreadable(path: Path, flag: str, exc: OSError) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{flag}: {path} cannot be read ({exc.strerror or exc})",
        expected="a readable CSV, TSV, JSON lines or Parquet file",
        fix=f"check the path given to {flag} and its permissions",
    )


def _attribute(path: Path, label: str, text: str) -> tuple[list[str], list[str]]:
    flag = "--attribute-data"
    renames = {
        "--label-column": "--attribute-label",
        "--text-column": "--attribute-text",
        "--id-column/": "",
        "--id-column": "--attribute-text",
    }
    try:
        records = load_labelled_texts(path, text_column=text, label_column=label)
    except FedembedError as exc:
        raise _flagged(exc, flag, renames) from None
    except OSError as exc:
        raise _unreadable(path, flag, exc) from None
    labels = records.require_labels(flag="--attribute-label")
    counts = records.class_counts()
    if len(records) < MIN_ATTRIBUTE_RECORDS or len(counts) < 2 or max(counts.values()) < 2:
        raise DataFormatError(
            path,
            0,
            f"{len(records)} records with {len(counts)} value(s) in {label!r} are too few "
            f"for the attribute attack (the file given to {flag})",
            expected=f">= {MIN_ATTRIBUTE_RECORDS} records, >= 2 distinct values of "
            f"--attribute-label {label} and one value on two records or more (the attacker "
            "learns from one record of a pair, the other is a target)",
            fix="add labelled records, or name another column with --attribute-label",
        )
    return records.texts, labels


def _texts(path: Path, text: str, flag: str, text_flag: str) -> list[str]:
    try:
        return load_labelled_texts(path, text_column=text).texts
    except FedembedError as exc:
        raise _flagged(
            exc, flag, {"--text-column": text_flag, "--id-column/": "", "--id-column": text_flag}
        ) from None
    except OSError as exc:
        raise _unreadable(path, flag, exc) from None


def _interactions(path: Path, doc_row: dict[str, int]) -> tuple[list[str], list[int]]:
    """Queries and their relevant document's row, from node-format interaction lines."""
    flag = "--membership-records"
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{flag}: {path} {'is not a file' if path.exists() else 'does not exist'}",
            expected='a JSON lines file of {"query_id", "query", "doc_id"} records',
            fix=f"check the path given to {flag}",
        )
    queries: list[str] = []
    positive: list[int] = []
    try:
        lines = list(iter_jsonl(path, what='{"query_id", "query", "doc_id"} per line'))
    except FedembedError as exc:
        raise _flagged(exc, flag, {}) from None
    except OSError as exc:
        raise _unreadable(path, flag, exc) from None
    for number, record in lines:
        missing = [k for k in _INTERACTION_KEYS if k not in record]
        query = record.get("query")
        doc_id = str(record.get("doc_id"))
        problem = (
            f"missing key(s) {', '.join(missing)}"
            if missing
            else "the query is not a non-empty string"
            if not isinstance(query, str) or not query.strip()
            else f"doc_id {doc_id!r} is not in --membership-documents"
            if doc_id not in doc_row
            else None
        )
        if problem is not None:
            raise DataFormatError(
                path,
                number,
                f"{problem} (the file given to {flag})",
                expected='{"query_id", "query", "doc_id"} per line, each doc_id an "id" of '
                "--membership-documents (the node format: `fedembed node check --help`)",
                fix="fix or remove the line, or add the document to --membership-documents",
            )
        queries.append(str(query).strip())
        positive.append(doc_row[doc_id])
    return queries, positive


def _membership(records: Path, documents: Path) -> tuple[list[str], list[int], list[str]]:
    flag = "--membership-documents"
    try:
        docs = load_documents(documents)
    except FedembedError as exc:
        raise _flagged(
            exc,
            flag,
            {
                "--id-column/--text-column": '"id" and "text" fields',
                "--id-column": 'an "id" field',
                "--text-column": 'a "text" field',
            },
        ) from None
    except OSError as exc:
        raise _unreadable(documents, flag, exc) from None
    queries, positive = _interactions(records, {d.id: n for n, d in enumerate(docs)})
    if len(queries) < MIN_MEMBERSHIP_RECORDS or len(docs) < MIN_MEMBERSHIP_DOCUMENTS:
        raise DataFormatError(
            records if len(queries) < MIN_MEMBERSHIP_RECORDS else documents,
            0,
            f"{len(queries)} interaction records and {len(docs)} documents are too few for "
            "the membership game (--membership-records, --membership-documents)",
            expected=f">= {MIN_MEMBERSHIP_RECORDS} records in --membership-records (each "
            "shadow and target model trains on a random half of them) and >= "
            f"{MIN_MEMBERSHIP_DOCUMENTS} documents in --membership-documents",
            fix="give more interaction records, or leave both flags out to play the game on "
            "SciFact's train pairs",
        )
    return queries, positive, [d.text for d in docs]


def read_auditor_records(
    *,
    attribute_data: Path | None = None,
    attribute_label: str | None = None,
    attribute_text: str = "text",
    target_records: Path | None = None,
    target_text: str = "text",
    membership_records: Path | None = None,
    membership_documents: Path | None = None,
) -> AuditorRecords:
    """Read and check the auditor's files (the CLI's flags, by name); nothing is embedded.

    Raises:
        FedembedError: A flag without its partner, a missing or unreadable file, a missing
            column, too few records: each names the flag that fixes it.
    """
    if (attribute_data is None) != (attribute_label is None):
        given, needed = (
            ("--attribute-label", "--attribute-data FILE")
            if attribute_data is None
            else ("--attribute-data", "--attribute-label COL")
        )
        raise FedembedError(
            f"{given} was given without {needed.split()[0]}",
            expected="--attribute-data FILE and --attribute-label COL together",
            fix=f"add {needed} (the labelled records and the column holding the attribute), "
            "or leave both out to attack BANKING77's intent",
        )
    if (membership_records is None) != (membership_documents is None):
        given = "--membership-records" if membership_documents is None else "--membership-documents"
        other = "--membership-documents" if membership_documents is None else "--membership-records"
        raise FedembedError(
            f"{given} was given without {other}",
            expected="--membership-records FILE and --membership-documents FILE together",
            fix=f"add {other} FILE, or leave both out to play the game on SciFact's train pairs",
        )
    fields: dict[str, Any] = {}
    if attribute_data is not None and attribute_label is not None:
        texts, labels = _attribute(Path(attribute_data), attribute_label, attribute_text)
        fields.update(
            attribute_path=Path(attribute_data),
            attribute_label=attribute_label,
            attribute_texts=texts,
            attribute_labels=labels,
        )
    if target_records is not None:
        fields.update(
            target_path=Path(target_records),
            target_texts=_texts(
                Path(target_records), target_text, "--target-records", "--target-text"
            ),
        )
    if membership_records is not None and membership_documents is not None:
        queries, positive, documents = _membership(
            Path(membership_records), Path(membership_documents)
        )
        fields.update(
            membership_path=Path(membership_records),
            documents_path=Path(membership_documents),
            membership_queries=queries,
            membership_positive=positive,
            document_texts=documents,
        )
    records = AuditorRecords(**fields)
    logger.info(
        "audit: auditor's files: attribute %s, targets %s, membership %s",
        "none" if records.attribute_texts is None else len(records.attribute_texts),
        "none" if records.target_texts is None else len(records.target_texts),
        "none" if records.membership_queries is None else len(records.membership_queries),
    )
    return records


def read_auditor_inputs(inputs: AuditInputs) -> AuditorRecords:
    """:func:`read_auditor_records` of the auditor's files named in ``inputs``."""
    return read_auditor_records(
        attribute_data=inputs.attribute_data,
        attribute_label=inputs.attribute_label,
        attribute_text=inputs.attribute_text,
        target_records=inputs.target_records,
        target_text=inputs.target_text,
        membership_records=inputs.membership_records,
        membership_documents=inputs.membership_documents,
    )
