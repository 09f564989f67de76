"""The auditor's own files, written at test time from the shared data (never copied in).

STS-B sentences with their genre (a label the audit itself never reads), SciFact claims
as target records, and SciFact train (query, document) pairs in the node format as the
membership pool.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from itertools import islice
from pathlib import Path

__all__ = ["GENRES_PER", "POOL", "write_claims_jsonl", "write_genre_csv", "write_pool"]

GENRES_PER = 30  # STS-B sentences per genre in the auditor's attribute file
POOL = 20  # SciFact train pairs in the auditor's membership records


def write_genre_csv(shared: Path, path: Path) -> Path:
    """STS-B train sentences with their genre: columns ``sentence`` and ``genre``."""
    kept: Counter[str] = Counter()
    rows = []
    with open(shared / "stsb" / "stsb-train.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if kept[record["genre"]] < GENRES_PER:
                kept[record["genre"]] += 1
                rows.append({"sentence": record["sentence1"], "genre": record["genre"]})
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["sentence", "genre"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_claims_jsonl(shared: Path, path: Path, count: int = 8) -> Path:
    """The first SciFact queries as ``{"id", "text"}`` lines."""
    with open(shared / "scifact" / "queries.jsonl", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in islice(handle, count)]
    path.write_text("".join(json.dumps({"id": q["_id"], "text": q["text"]}) + "\n" for q in lines))
    return path


def write_pool(shared: Path, folder: Path, pairs: int = POOL) -> tuple[Path, Path]:
    """SciFact train pairs as node-format interactions, and the documents they cite."""
    scifact = shared / "scifact"
    rows = [line.split("\t") for line in (scifact / "qrels" / "train.tsv").read_text().splitlines()]
    chosen = [(q, d) for q, d, _ in rows[1 : pairs + 1]]
    queries = {}
    with open(scifact / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            queries[record["_id"]] = record["text"]
    cited = {d for _, d in chosen}
    documents = []
    with open(scifact / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record["_id"] in cited or len(documents) < len(cited) + 10:
                documents.append(
                    {"id": record["_id"], "text": record["title"] + " " + record["text"]}
                )
    folder.mkdir(parents=True, exist_ok=True)
    interactions = folder / "interactions.jsonl"
    interactions.write_text(
        "".join(
            json.dumps({"query_id": q, "query": queries[q], "doc_id": d}) + "\n" for q, d in chosen
        )
    )
    docs = folder / "documents.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in documents))
    return interactions, docs
