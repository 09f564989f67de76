"""Loading retrieval datasets in BEIR format.

A BEIR dataset folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``,
``metadata``), ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` with the
header ``query-id<TAB>corpus-id<TAB>score``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedding_core.data.documents import iter_jsonl, iter_text_lines
from embedding_core.errors import DataFormatError, DatasetNotFoundError

__all__ = ["QRELS_HEADER", "BeirDataset", "load_beir"]

logger = logging.getLogger(__name__)

QRELS_HEADER = ("query-id", "corpus-id", "score")
"""The header every BEIR qrels file starts with."""


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR retrieval dataset, restricted to one qrels split.

    Attributes:
        name: The dataset's name (by default its folder name).
        corpus_ids: Document ids, in corpus order.
        corpus_texts: Document texts (``title + " " + text``, stripped), aligned with
            ``corpus_ids``.
        queries: Query id -> query text, only for queries judged in ``split``.
        qrels: Query id -> {document id -> relevance score}.
        split: The qrels split loaded, e.g. ``"test"``.
    """

    name: str
    corpus_ids: list[str]
    corpus_texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    split: str

    @property
    def num_docs(self) -> int:
        """The number of documents in the corpus."""
        return len(self.corpus_ids)

    @property
    def num_judgements(self) -> int:
        """The number of (query, document) relevance judgements in the split."""
        return sum(len(docs) for docs in self.qrels.values())


def _record_id(path: Path, number: int, record: dict[str, Any]) -> str:
    """Return the record's ``_id`` as a string, or raise a DataFormatError."""
    fix = f'give every line of {path.name} a string or integer "_id"'
    if "_id" not in record:
        raise DataFormatError(
            path,
            number,
            f'missing "_id" (fields present: {", ".join(record) or "none"})',
            expected='an object with an "_id" field',
            fix=fix,
        )
    raw = record["_id"]
    if isinstance(raw, bool) or not isinstance(raw, str | int) or not str(raw).strip():
        raise DataFormatError(
            path,
            number,
            f'invalid "_id" {raw!r}',
            expected="a non-empty string or integer id",
            fix=fix,
        )
    return str(raw)


def _field_text(path: Path, number: int, record: dict[str, Any], key: str) -> str:
    """Return a string field of a record (``""`` when absent or null)."""
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataFormatError(
            path,
            number,
            f'"{key}" is a {type(value).__name__}, not a string',
            expected=f'"{key}" as a JSON string',
            fix=f'store "{key}" as a string',
        )
    return value


def _check_unique(path: Path, number: int, item_id: str, seen: dict[str, int], kind: str) -> None:
    if item_id in seen:
        raise DataFormatError(
            path,
            number,
            f"duplicate {kind} id {item_id!r} (first seen on line {seen[item_id]})",
            expected=f"unique {kind} ids",
            fix="remove or rename one of the two lines",
        )
    seen[item_id] = number


def _load_corpus(path: Path) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for number, record in iter_jsonl(path, what="one JSON object per line with _id, title, text"):
        doc_id = _record_id(path, number, record)
        title = _field_text(path, number, record, "title")
        body = _field_text(path, number, record, "text")
        text = f"{title} {body}".strip()
        if not text:
            raise DataFormatError(
                path,
                number,
                f"document {doc_id!r} is empty (no title and no text)",
                expected='a non-empty "title" or "text"',
                fix="remove the line or fill in its text",
            )
        _check_unique(path, number, doc_id, seen, "document")
        ids.append(doc_id)
        texts.append(text)
    if not ids:
        raise DataFormatError(
            path,
            0,
            "the corpus holds no documents",
            expected="one JSON object per document",
            fix="re-download or re-create the corpus",
        )
    return ids, texts


def _load_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    seen: dict[str, int] = {}
    for number, record in iter_jsonl(path, what="one JSON object per line with _id and text"):
        query_id = _record_id(path, number, record)
        text = _field_text(path, number, record, "text").strip()
        if not text:
            raise DataFormatError(
                path,
                number,
                f'query {query_id!r} has an empty "text"',
                expected="a non-empty query text",
                fix="remove the line or fill in its text",
            )
        _check_unique(path, number, query_id, seen, "query")
        queries[query_id] = text
    return queries


def _load_qrels(
    path: Path, queries: dict[str, str], corpus_ids: set[str]
) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    row_fix = "fix the line so that it reads query-id<TAB>corpus-id<TAB>integer score"
    header_seen = False
    for number, stripped in iter_text_lines(path):
        if not stripped.strip():
            continue
        fields = stripped.split("\t")
        if not header_seen:
            header_seen = True
            if tuple(f.strip() for f in fields) != QRELS_HEADER:
                raise DataFormatError(
                    path,
                    number,
                    f"wrong header {stripped!r}",
                    expected="the header query-id<TAB>corpus-id<TAB>score",
                    fix=f"make the first line of {path.name} exactly that header",
                )
            continue
        if len(fields) != 3:
            raise DataFormatError(
                path,
                number,
                f"{len(fields)} tab-separated columns instead of 3",
                expected="query-id<TAB>corpus-id<TAB>score",
                fix=row_fix,
            )
        query_id, doc_id, raw_score = (f.strip() for f in fields)
        try:
            score = int(raw_score)
        except ValueError:
            raise DataFormatError(
                path,
                number,
                f"score {raw_score!r} is not an integer",
                expected="an integer relevance score",
                fix=row_fix,
            ) from None
        if query_id not in queries:
            raise DataFormatError(
                path,
                number,
                f"query id {query_id!r} is not in queries.jsonl",
                expected="query ids that appear in queries.jsonl",
                fix="add the query to queries.jsonl or remove the line",
            )
        if doc_id not in corpus_ids:
            raise DataFormatError(
                path,
                number,
                f"corpus id {doc_id!r} is not in corpus.jsonl",
                expected="document ids that appear in corpus.jsonl",
                fix="add the document to corpus.jsonl or remove the line",
            )
        judged = qrels.setdefault(query_id, {})
        if doc_id in judged and judged[doc_id] != score:
            raise DataFormatError(
                path,
                number,
                f"conflicting scores for query {query_id!r} and document {doc_id!r}",
                expected="one score per (query, document) pair",
                fix="keep only one of the lines",
            )
        judged[doc_id] = score
    if not qrels:
        raise DataFormatError(
            path,
            0,
            "the qrels file holds no judgements",
            expected="a header line and at least one query-id<TAB>corpus-id<TAB>score line",
            fix="re-download or re-create the qrels file",
        )
    return qrels


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{what} {path} does not exist",
            expected="a BEIR folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv",
            fix="pass the dataset folder, or download it with `fedembed data download <name>`",
        )


def load_beir(path: str | Path, *, split: str = "test", name: str | None = None) -> BeirDataset:
    """Load a BEIR dataset folder for one qrels split.

    Args:
        path: The dataset folder (the one holding ``corpus.jsonl``).
        split: The qrels split to load (``qrels/<split>.tsv``).
        name: The dataset's name; by default the folder's name.

    Returns:
        The dataset; ``queries`` holds only the queries judged in ``split``.

    Raises:
        DatasetNotFoundError: The folder, one of its files or the split does not exist.
        DataFormatError: A file is malformed; the message names the file and line.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"the BEIR dataset folder {folder} does not exist",
            expected="a folder with corpus.jsonl, queries.jsonl and qrels/",
            fix="pass --data-dir pointing at the folder that holds the dataset",
        )
    corpus_path = folder / "corpus.jsonl"
    queries_path = folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    _require_file(corpus_path, "the corpus file")
    _require_file(queries_path, "the queries file")
    if not qrels_path.is_file():
        qrels_dir = folder / "qrels"
        available = sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
        raise DatasetNotFoundError(
            f"split {split!r} not found: {qrels_path} does not exist",
            expected=f"one of the available splits: {', '.join(available) or 'none'}",
            fix="pass one of the available splits",
        )
    corpus_ids, corpus_texts = _load_corpus(corpus_path)
    all_queries = _load_queries(queries_path)
    qrels = _load_qrels(qrels_path, all_queries, set(corpus_ids))
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    dataset = BeirDataset(
        name=name or folder.resolve().name,
        corpus_ids=corpus_ids,
        corpus_texts=corpus_texts,
        queries=queries,
        qrels=qrels,
        split=split,
    )
    logger.info(
        "loaded %s/%s: %d documents, %d queries, %d judgements",
        dataset.name,
        split,
        dataset.num_docs,
        len(queries),
        dataset.num_judgements,
    )
    return dataset
