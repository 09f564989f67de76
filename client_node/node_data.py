"""A member node's on-premise data folder.

Layout (written by the operator, or by ``fedembed demo`` for the simulated consortium)::

    <node-dir>/documents.jsonl     {"id", "text"}: the member's own documents
    <node-dir>/interactions.jsonl  {"query_id", "query", "doc_id"[, "person_id"]}:
                                   private search interactions, one record a line
    <node-dir>/state/              ledger, embedding cache, local models (node-only)

Privacy unit (what DP-SGD samples, clips and accounts as one): all records of one
person when the file has a ``person_id`` column (then every line needs one), otherwise
all records of one query (records sharing a ``query_id`` or the same query text). The
documents are not a privacy unit: training uses them as every record's negatives.

Raw text and plaintext vectors never leave this folder.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedding_core.cache import CACHE_DIR_ENV, EmbeddingCache
from embedding_core.data.documents import Document, iter_jsonl, load_documents
from embedding_core.data.federated_split import DOCUMENTS_FILE, INTERACTIONS_FILE
from embedding_core.encoder import Encoder
from embedding_core.errors import DataFormatError, DatasetNotFoundError

__all__ = ["PERSON_KEY", "STATE_DIR", "Interaction", "NodeData", "load_node_data"]

logger = logging.getLogger(__name__)

STATE_DIR = "state"
_INTERACTION_KEYS = ("query_id", "query", "doc_id")
PERSON_KEY = "person_id"


@dataclass(frozen=True)
class Interaction:
    """One private record: a query and a document the user found relevant."""

    query_id: str
    query: str
    doc_id: str
    person_id: str | None = None


@dataclass(frozen=True)
class NodeData:
    """A member's documents and interactions, validated against each other."""

    node_dir: Path
    documents: list[Document]
    interactions: list[Interaction]

    @property
    def state_dir(self) -> Path:
        """Node-private folder for the ledger, caches and local models."""
        path = self.node_dir / STATE_DIR
        path.mkdir(parents=True, exist_ok=True)
        return path

    def vectors(self, encoder: Encoder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Encode (cached on the node) documents and queries.

        The cache is the node's ``state/embeddings`` unless its operator names one with
        ``FEDEMBED_CACHE_DIR`` (``fedembed demo`` does: every party on its one host shares
        one cache, so SciFact is encoded once).

        Returns:
            ``(query_vectors, positive_index, doc_vectors)`` aligned with
            ``interactions`` and ``documents``.
        """
        cache = EmbeddingCache(os.environ.get(CACHE_DIR_ENV) or self.state_dir / "embeddings")
        doc_vectors = cache.get_or_encode(encoder, [d.text for d in self.documents])
        query_vectors = cache.get_or_encode(encoder, [i.query for i in self.interactions])
        position = {d.id: n for n, d in enumerate(self.documents)}
        positive = np.array([position[i.doc_id] for i in self.interactions], dtype=np.int64)
        return query_vectors, positive, doc_vectors

    def unit_ids(self) -> NDArray[np.int64]:
        """Privacy unit of each interaction, numbered ``0 .. units - 1`` (see the module)."""
        records = self.interactions
        if records[0].person_id is not None:
            people: dict[str | None, int] = {}
            return np.array(
                [people.setdefault(r.person_id, len(people)) for r in records], dtype=np.int64
            )
        # Records sharing a query id or a query text are one query: union-find over both.
        parent = list(range(len(records)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        first: dict[tuple[str, str], int] = {}
        for n, r in enumerate(records):
            for key in (("id", r.query_id), ("text", r.query)):
                parent[root(n)] = root(first.setdefault(key, n))
        numbers: dict[int, int] = {}
        return np.array(
            [numbers.setdefault(root(n), len(numbers)) for n in range(len(records))],
            dtype=np.int64,
        )

    @property
    def num_units(self) -> int:
        """Number of privacy units."""
        return int(self.unit_ids().max()) + 1


def _identifier(path: Path, number: int, record: dict[str, object], key: str) -> str:
    """``record[key]`` as an id: a non-empty string or a number (never null or a list)."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value):
        raise DataFormatError(
            path,
            number,
            f'"{key}" is {json.dumps(value)}',
            expected=f'"{key}" as a non-empty string or a number',
            fix=f'give the line its "{key}"',
        )
    return str(value)


def _load_interactions(path: Path, known_docs: set[str]) -> list[Interaction]:
    out: list[Interaction] = []
    for number, record in iter_jsonl(path, what='{"query_id", "query", "doc_id"} per line'):
        missing = [k for k in _INTERACTION_KEYS if k not in record]
        if missing:
            raise DataFormatError(
                path,
                number,
                f"missing key(s) {', '.join(missing)}",
                expected=f"keys {', '.join(_INTERACTION_KEYS)}",
                fix="add the missing keys to the line",
            )
        raw_query = record["query"]
        if not isinstance(raw_query, str):
            raise DataFormatError(
                path,
                number,
                f'"query" is {json.dumps(raw_query)}',
                expected='"query" as the query text (a JSON string)',
                fix="put the query text on the line, or remove the line",
            )
        query = raw_query.strip()
        if not query:
            raise DataFormatError(
                path, number, "empty query", expected="a non-empty query", fix="remove the line"
            )
        query_id = _identifier(path, number, record, "query_id")
        doc_id = _identifier(path, number, record, "doc_id")
        if doc_id not in known_docs:
            raise DataFormatError(
                path,
                number,
                f"doc_id {doc_id!r} is not in {DOCUMENTS_FILE}",
                expected="interactions that point at the node's own documents",
                fix=f"add the document to {DOCUMENTS_FILE} or remove the line",
            )
        person = record.get(PERSON_KEY)
        mixed = bool(out) and (person is None) != (out[0].person_id is None)
        if mixed or person == "":
            raise DataFormatError(
                path,
                number,
                f"{PERSON_KEY} is on some lines and missing or empty on others",
                expected=f"a non-empty {PERSON_KEY} on every line, or on none",
                fix=f"add {PERSON_KEY} to every line (it makes one person one privacy unit)",
            )
        out.append(
            Interaction(
                query_id,
                query,
                doc_id,
                None if person is None else _identifier(path, number, record, PERSON_KEY),
            )
        )
    if not out:
        raise DataFormatError(
            path, 0, "no interactions", expected="at least one line", fix="add interactions"
        )
    return out


def _reworded(exc: DataFormatError) -> DataFormatError:
    """The same error, its fix in the node folder's terms (fixed field names, no options)."""
    if "--id-column" not in exc.fix and "--text-column" not in exc.fix:
        return exc
    where = f"{exc.path}:{exc.line}" if exc.line > 0 else f"{exc.path}"
    return DataFormatError(
        exc.path,
        exc.line,
        exc.problem.removeprefix(f"{where}: "),
        expected=exc.expected,
        fix=f'give every line of {DOCUMENTS_FILE} an "id" and a "text" field '
        "(formats: `fedembed node check --help`)",
    )


def load_node_data(node_dir: str | Path) -> NodeData:
    """Load and cross-check a node's data folder."""
    folder = Path(node_dir)
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"the node data folder {folder} "
            f"{'is not a folder' if folder.exists() else 'does not exist'}",
            expected=f"a node folder holding {DOCUMENTS_FILE} and {INTERACTIONS_FILE}",
            fix="pass the node's data folder (--data-dir / node-config data-dir)",
        )
    for name in (DOCUMENTS_FILE, INTERACTIONS_FILE):
        if not (folder / name).is_file():
            raise DatasetNotFoundError(
                f"node data file {folder / name} does not exist",
                expected=f"a node folder holding {DOCUMENTS_FILE} and {INTERACTIONS_FILE}",
                fix=f"add {name} to the folder (formats: `fedembed node check --help`)",
            )
    try:
        documents = load_documents(folder / DOCUMENTS_FILE)
    except DataFormatError as exc:  # its fixes name `data validate`'s column options
        raise _reworded(exc) from None
    interactions = _load_interactions(folder / INTERACTIONS_FILE, {d.id for d in documents})
    logger.info(
        "load: node_dir=%s documents=%d interactions=%d",
        folder,
        len(documents),
        len(interactions),
    )
    return NodeData(folder, documents, interactions)
