"""Loading the STS Benchmark (sentence pairs scored 0-5).

The folder holds ``stsb-{split}.jsonl`` (``sentence1``, ``sentence2``, ``score``) and/or
the original release files ``sts-{split}.csv``: tab-separated, no header, no quoting,
fields genre, file, year, id, score, sentence1, sentence2 and sometimes two trailing
attribution fields, which are ignored.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from embedding_core.data.documents import iter_jsonl, iter_text_lines
from embedding_core.errors import DataFormatError, DatasetNotFoundError

__all__ = ["MAX_SCORE", "MIN_SCORE", "StsPair", "load_stsb"]

logger = logging.getLogger(__name__)

MIN_SCORE = 0.0
"""The lowest similarity score in STS-B."""
MAX_SCORE = 5.0
"""The highest similarity score in STS-B."""

_CSV_FIELDS = 7
_SCORE_FIELD = 4
_SENTENCE_FIELDS = (5, 6)


@dataclass(frozen=True)
class StsPair:
    """A sentence pair with its gold similarity score.

    Attributes:
        sentence1: The first sentence.
        sentence2: The second sentence.
        score: The gold similarity, from 0 (unrelated) to 5 (equivalent).
    """

    sentence1: str
    sentence2: str
    score: float


def _sentence(path: Path, number: int, key: str, value: object) -> str:
    """Return ``value`` if it is a non-empty string, else raise a DataFormatError."""
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(
            path,
            number,
            f"{key} is empty or not a string ({value!r})",
            expected="two non-empty sentences",
            fix=f"fix or remove line {number} of {path.name}",
        )
    return value


def _make_pair(
    path: Path, number: int, sentence1: object, sentence2: object, score: object
) -> StsPair:
    """Validate one pair's fields and return the pair."""
    fix = f"fix or remove line {number} of {path.name}"
    first = _sentence(path, number, "sentence1", sentence1)
    second = _sentence(path, number, "sentence2", sentence2)
    if isinstance(score, str):
        try:
            score = float(score)
        except ValueError:
            raise DataFormatError(
                path,
                number,
                f"score {score!r} is not a number",
                expected=f"a number from {MIN_SCORE:g} to {MAX_SCORE:g}",
                fix=fix,
            ) from None
    if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score):
        raise DataFormatError(
            path,
            number,
            f"score {score!r} is not a number",
            expected=f"a number from {MIN_SCORE:g} to {MAX_SCORE:g}",
            fix=fix,
        )
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise DataFormatError(
            path,
            number,
            f"score {score!r} is outside [{MIN_SCORE:g}, {MAX_SCORE:g}]",
            expected=f"a number from {MIN_SCORE:g} to {MAX_SCORE:g}",
            fix=fix,
        )
    return StsPair(sentence1=first, sentence2=second, score=float(score))


def _load_jsonl(path: Path) -> list[StsPair]:
    pairs: list[StsPair] = []
    what = "one JSON object per line with sentence1, sentence2 and score"
    for number, record in iter_jsonl(path, what=what):
        missing = [k for k in ("sentence1", "sentence2", "score") if k not in record]
        if missing:
            raise DataFormatError(
                path,
                number,
                f"missing field(s) {', '.join(missing)}",
                expected=what,
                fix=f"add the missing field(s) to line {number}",
            )
        json_score = record["score"]
        if isinstance(json_score, str):
            raise DataFormatError(
                path,
                number,
                f"score {json_score!r} is a string, not a number",
                expected=f"a JSON number from {MIN_SCORE:g} to {MAX_SCORE:g}",
                fix=f"fix or remove line {number} of {path.name}",
            )
        pairs.append(_make_pair(path, number, record["sentence1"], record["sentence2"], json_score))
    return pairs


def _load_csv(path: Path) -> list[StsPair]:
    pairs: list[StsPair] = []
    for number, line in iter_text_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < _CSV_FIELDS:
            raise DataFormatError(
                path,
                number,
                f"{len(fields)} tab-separated fields instead of at least {_CSV_FIELDS}",
                expected="genre, file, year, id, score, sentence1, sentence2 separated by tabs",
                fix=f"fix or remove line {number} of {path.name}",
            )
        first, second = (fields[i] for i in _SENTENCE_FIELDS)
        pairs.append(_make_pair(path, number, first, second, fields[_SCORE_FIELD].strip()))
    return pairs


def load_stsb(path: str | Path, *, split: str = "test") -> list[StsPair]:
    """Load one split of the STS Benchmark.

    Reads ``stsb-{split}.jsonl`` and falls back to the original ``sts-{split}.csv``.

    Args:
        path: The STS-B folder, or one split file directly (``.jsonl`` or ``.csv``).
        split: ``"train"``, ``"dev"`` or ``"test"`` (ignored when ``path`` is a file).

    Returns:
        The sentence pairs, in file order.

    Raises:
        DatasetNotFoundError: Neither file of the split exists.
        DataFormatError: A line is malformed or the file holds no pairs; the message
            names the file and line.
    """
    location = Path(path).expanduser()
    if location.is_file():
        candidates = [location]
    else:
        candidates = [location / f"stsb-{split}.jsonl", location / f"sts-{split}.csv"]
    source = next((c for c in candidates if c.is_file()), None)
    if source is None:
        available = (
            sorted(
                {p.name for p in location.glob("stsb-*.jsonl")}
                | {p.name for p in location.glob("sts-*.csv")}
            )
            if location.is_dir()
            else []
        )
        raise DatasetNotFoundError(
            f"STS-B split {split!r} not found: looked for "
            + " and ".join(str(c) for c in candidates),
            expected=f"one of those files (present: {', '.join(available) or 'none'})",
            fix="pass --data-dir pointing at the folder holding stsb/, or pick an existing split",
        )
    pairs = _load_jsonl(source) if source.suffix.lower() == ".jsonl" else _load_csv(source)
    if not pairs:
        raise DataFormatError(
            source,
            0,
            "the file holds no sentence pairs",
            expected="one sentence pair per line",
            fix="re-download or re-create the file",
        )
    logger.info("loaded %d STS-B pairs from %s", len(pairs), source)
    return pairs
