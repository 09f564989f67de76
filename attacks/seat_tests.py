"""SEAT test files: the sent-bias suite and any auditor's folder of tests in its format.

May et al., "On Measuring Social Biases in Sentence Encoders" (NAACL 2019; repository
W4ngatang/sent-bias, ``tests/*.jsonl``) store each WEAT/SEAT test as ONE JSON object with
``targ1``, ``targ2``, ``attr1``, ``attr2``, each ``{"category": str, "examples": [str, ...]}``.
:func:`load_bias_tests` reads the suite (``weat*`` word lists of Caliskan et al., Science
2017, ``sent-weat*`` their sentence versions, the double-bind and angry-black-woman
tests); :func:`load_bias_folder` reads any folder of such files, whatever their names;
:func:`collect_bias_tests` joins folders into one family with unique test names.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from embedding_core.data import resolve_dataset_dir
from embedding_core.errors import DataFormatError, DatasetNotFoundError

__all__ = [
    "SEAT_DATASET",
    "SEAT_FORMAT",
    "SET_KEYS",
    "TEST_SUFFIX",
    "BiasTest",
    "TextSet",
    "collect_bias_tests",
    "load_bias_folder",
    "load_bias_test",
    "load_bias_tests",
    "resolve_seat_dir",
]

logger = logging.getLogger(__name__)

SEAT_DATASET = "seat"
TESTS_FOLDER = "tests"
TEST_SUFFIX = ".jsonl"
_MARKER = f"{TESTS_FOLDER}/weat1{TEST_SUFFIX}"
SET_KEYS = ("targ1", "targ2", "attr1", "attr2")
CATEGORY_KEY = "category"
EXAMPLES_KEY = "examples"
SENTENCE_PREFIX = "sent-"
SEAT_FORMAT = (
    'one JSON object per file: {"targ1", "targ2", "attr1", "attr2"}, each '
    '{"category": str, "examples": [str, ...]} (the sent-bias format)'
)
SEAT_FIX = "write each test as one such object in its own <name>.jsonl file"


@dataclass(frozen=True)
class TextSet:
    """One target or attribute set of a test."""

    category: str
    examples: tuple[str, ...]


@dataclass(frozen=True)
class BiasTest:
    """One WEAT/SEAT test: target sets X, Y and attribute sets A, B."""

    name: str
    targ1: TextSet
    targ2: TextSet
    attr1: TextSet
    attr2: TextSet
    path: Path | None = None  # the file it was read from

    @property
    def file_name(self) -> str:
        """The file's name without ``.jsonl`` (``name`` may carry a folder prefix)."""
        return self.path.name.removesuffix(TEST_SUFFIX) if self.path else self.name

    @property
    def level(self) -> str:
        """``"sentence"`` for ``sent-*`` tests, else ``"word"`` (word or context lists)."""
        return "sentence" if self.name.startswith(SENTENCE_PREFIX) else "word"

    def texts(self) -> list[str]:
        """Every example of the four sets, in set order."""
        return [t for s in (self.targ1, self.targ2, self.attr1, self.attr2) for t in s.examples]


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _text_set(path: Path, key: str, raw: object) -> TextSet:
    expected = f'"{key}": {{"{CATEGORY_KEY}": str, "{EXAMPLES_KEY}": [str, ...]}}'
    if not isinstance(raw, dict):
        raise DataFormatError(path, 0, f"{key!r} is not an object", expected=expected)
    category = raw.get(CATEGORY_KEY)
    examples = raw.get(EXAMPLES_KEY)
    if not isinstance(category, str):
        raise DataFormatError(
            path, 0, f"{key}.{CATEGORY_KEY} is missing or not a string", expected=expected
        )
    if not isinstance(examples, list) or not examples:
        raise DataFormatError(
            path, 0, f"{key}.{EXAMPLES_KEY} is missing or empty", expected=expected
        )
    if not all(isinstance(e, str) and e.strip() for e in examples):
        raise DataFormatError(
            path, 0, f"{key}.{EXAMPLES_KEY} holds a non-string or blank example", expected=expected
        )
    return TextSet(category, tuple(examples))


def load_bias_test(path: str | Path) -> BiasTest:
    """Read one sent-bias test file (a single JSON object despite the .jsonl name).

    Raises:
        DatasetNotFoundError: The file does not exist.
        DataFormatError: It is not valid JSON, or a set is missing or malformed.
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetNotFoundError(f"bias test {file} does not exist")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = exc.lineno if isinstance(exc, json.JSONDecodeError) else 0
        raise DataFormatError(
            file,
            line,
            f"not valid JSON ({exc})",
            expected=SEAT_FORMAT,
            fix=SEAT_FIX,
        ) from exc
    if not isinstance(raw, dict):
        raise DataFormatError(
            file, 0, "top level is not a JSON object", expected=SEAT_FORMAT, fix=SEAT_FIX
        )
    missing = [k for k in SET_KEYS if k not in raw]
    if missing:
        raise DataFormatError(
            file,
            0,
            f"missing set(s) {', '.join(missing)}",
            expected=SEAT_FORMAT,
            fix=SEAT_FIX,
        )
    targ1, targ2, attr1, attr2 = (_text_set(file, key, raw[key]) for key in SET_KEYS)
    return BiasTest(file.name.removesuffix(TEST_SUFFIX), targ1, targ2, attr1, attr2, path=file)


def resolve_seat_dir(data_dir: str | Path | None = None) -> Path:
    """The folder holding the ``*.jsonl`` tests.

    ``data_dir`` may be that folder itself, the ``seat`` dataset folder, or the data
    directory holding ``seat/`` (``None``: ``FEDEMBED_DATA_DIR``).
    """
    if data_dir is not None and (Path(data_dir) / f"weat1{TEST_SUFFIX}").is_file():
        return Path(data_dir)
    return resolve_dataset_dir(data_dir, SEAT_DATASET, marker=_MARKER) / TESTS_FOLDER


def load_bias_tests(
    data_dir: str | Path | None = None, *, names: Sequence[str] | None = None
) -> list[BiasTest]:
    """Load the tests of the sent-bias suite, naturally sorted (weat1, weat2, ..., weat10).

    Args:
        data_dir: See :func:`resolve_seat_dir`.
        names: Only these tests (file names without ``.jsonl``) among those the folder
            holds; all when ``None``, or when the folder holds none of them.
    """
    folder = resolve_seat_dir(data_dir)
    paths = _test_files(folder)
    if names is not None:
        wanted = [p for p in paths if p.name.removesuffix(TEST_SUFFIX) in set(names)]
        if len(wanted) < len(set(names)):
            held = {p.name.removesuffix(TEST_SUFFIX) for p in paths}
            logger.warning(
                "bias_audit: %s holds no %s", folder, ", ".join(sorted(set(names) - held))
            )
        paths = wanted or paths
    tests = [load_bias_test(path) for path in paths]
    logger.info("bias_audit: loaded %d tests from %s", len(tests), folder)
    return tests


def _test_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{TEST_SUFFIX}"), key=lambda p: _natural_key(p.name))


def load_bias_folder(folder: str | Path, *, option: str = "bias test folder") -> list[BiasTest]:
    """Every ``*.jsonl`` test of ``folder`` (any names), naturally sorted.

    Args:
        folder: A folder of SEAT-format files (one JSON object each, see ``SEAT_FORMAT``).
        option: How the caller's interface names the folder in errors (``"--tests"``).

    Raises:
        DatasetNotFoundError: The folder does not exist or holds no ``*.jsonl`` file.
        DataFormatError: A file is not a SEAT test.
    """
    path = Path(folder)
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"{option} {path}: no such folder"
            if not path.exists()
            else f"{option} {path} is a file",
            expected=f"a folder of SEAT test files (*{TEST_SUFFIX}): {SEAT_FORMAT}",
            fix=f"give {option} the folder that holds your <name>{TEST_SUFFIX} test files",
        )
    paths = _test_files(path)
    if not paths:
        raise DatasetNotFoundError(
            f"{option} {path} holds no *{TEST_SUFFIX} file",
            expected=f"at least one SEAT test file: {SEAT_FORMAT}",
            fix=f"put each test in its own <name>{TEST_SUFFIX} file in {path}",
        )
    tests = [load_bias_test(p) for p in paths]
    logger.info("bias_audit: loaded %d tests from %s", len(tests), path)
    return tests


def _folder(test: BiasTest) -> Path:
    return test.path.parent if test.path is not None else Path("(built in code)")


def collect_bias_tests(
    groups: Sequence[Sequence[BiasTest]],
) -> tuple[list[BiasTest], dict[str, list[str]]]:
    """Join groups of tests (the suite, each auditor folder) into one family, named uniquely.

    A test keeps its file name unless another group holds the same one; then every test
    of that name is called ``<folder>/<name>`` (the whole folder path when the folders'
    own names agree too). The same file given twice is kept once.

    Returns:
        ``(tests, renamed)``: the tests in group order, and for each file name that had to
        be disambiguated the names now used.
    """
    seen: set[Path] = set()
    tests: list[BiasTest] = []
    for group in groups:
        for test in group:
            key = test.path.resolve() if test.path else None
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            tests.append(test)
    counts = Counter(t.name for t in tests)
    renamed: dict[str, list[str]] = {}
    for name in [n for n, c in counts.items() if c > 1]:
        clashing = [i for i, t in enumerate(tests) if t.name == name]
        folders = [_folder(tests[i]) for i in clashing]
        short = len({f.name for f in folders}) == len(folders)
        for i, folder in zip(clashing, folders, strict=True):
            label = folder.name if short else str(folder)
            tests[i] = replace(tests[i], name=f"{label}/{name}")
        renamed[name] = [tests[i].name for i in clashing]
        logger.info("bias_audit: %d folders hold %s; named %s", len(clashing), name, renamed[name])
    return tests, renamed
