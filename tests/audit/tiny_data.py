"""A miniature of the shared data folder: real rows, few of them, for fast audit runs.

Every file keeps its real format and its real lines (a deterministic selection: the first
judged queries, every k-th BANKING77 row), so the audit reads it exactly as it reads the
full data; only the counts are small.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

__all__ = ["BANK_ROWS", "CLAIMS", "STSB_PAIRS", "TRAIN_QUERIES", "write_tiny_data"]

STSB_PAIRS = 50  # per split: about 300 distinct public sentences in all
BANK_ROWS = (150, 30)  # BANKING77 train (public) and test (private targets) rows
CLAIMS = 12  # SciFact test claims judged
TRAIN_QUERIES = 40  # SciFact train queries (the membership pool)
EXTRA_DOCUMENTS = 40  # SciFact documents judged by none of the chosen queries
BIAS_TESTS = ("weat1", "weat7")  # word lists; weat1 also marks the SEAT folder


def _head_lines(source: Path, target: Path, count: int) -> None:
    with open(source, encoding="utf-8") as handle:
        lines = [line for _, line in zip(range(count), handle, strict=False)]
    target.write_text("".join(lines), encoding="utf-8")


def _every_kth_row(source: Path, target: Path, count: int) -> None:
    with open(source, newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    step = max(len(rows) // count, 1)
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows[::step][:count])


def _qrels(path: Path, count: int) -> list[list[str]]:
    """The judgements of the first ``count`` queries of a qrels file (header dropped)."""
    rows = [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    kept: list[list[str]] = []
    queries: list[str] = []
    for row in rows[1:]:
        if row[0] not in queries:
            if len(queries) == count:
                break
            queries.append(row[0])
        kept.append(row)
    return kept


def _scifact(source: Path, target: Path) -> None:
    (target / "qrels").mkdir(parents=True)
    header = "query-id\tcorpus-id\tscore\n"
    judged: set[str] = set()
    asked: set[str] = set()
    for split, count in (("test", CLAIMS), ("train", TRAIN_QUERIES)):
        rows = _qrels(source / "qrels" / f"{split}.tsv", count)
        (target / "qrels" / f"{split}.tsv").write_text(
            header + "".join("\t".join(row) + "\n" for row in rows), encoding="utf-8"
        )
        judged.update(row[1] for row in rows)
        asked.update(row[0] for row in rows)
    with open(source / "queries.jsonl", encoding="utf-8") as handle:
        queries = [line for line in handle if json.loads(line)["_id"] in asked]
    (target / "queries.jsonl").write_text("".join(queries), encoding="utf-8")
    extra = 0
    documents = []
    with open(source / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if json.loads(line)["_id"] in judged:
                documents.append(line)
            elif extra < EXTRA_DOCUMENTS:
                documents.append(line)
                extra += 1
    (target / "corpus.jsonl").write_text("".join(documents), encoding="utf-8")


def write_tiny_data(shared: Path, root: Path) -> Path:
    """Write a small copy of ``shared`` (stsb, banking77, scifact, seat) under ``root``."""
    (root / "stsb").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        name = f"stsb-{split}.jsonl"
        _head_lines(shared / "stsb" / name, root / "stsb" / name, STSB_PAIRS)
    (root / "banking77").mkdir()
    for name, count in zip(("train.csv", "test.csv"), BANK_ROWS, strict=True):
        _every_kth_row(shared / "banking77" / name, root / "banking77" / name, count)
    _scifact(shared / "scifact", root / "scifact")
    (root / "seat" / "tests").mkdir(parents=True)
    for name in BIAS_TESTS:
        shutil.copy(shared / "seat" / "tests" / f"{name}.jsonl", root / "seat" / "tests")
    return root
