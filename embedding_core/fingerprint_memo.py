"""A model folder's content hash, remembered across processes while its files are unchanged.

Hashing the bundled model's files (90 MB) takes 0.3-0.7 s, and a member node starts a
fresh process for every message of a round. The hash is kept in a small JSON file
beside the embedding cache (``<cache parent>/model-fingerprints.json``), keyed by the
folder's resolved path and, per file, its name, size, modification and status-change
times (ns) and inode: any change to any file (a rewrite, a copy over it, ``touch``,
``chmod``) makes the next lookup hash the files again. The status-change time cannot be
set back by a user, so a file swapped in with a forged modification time is noticed too.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["MEMO_FILE", "memoised_fingerprint"]

logger = logging.getLogger(__name__)

MEMO_FILE = "model-fingerprints.json"


def _signature(folder: Path, files: Iterable[Path]) -> list[list[object]]:
    rows: list[list[object]] = []
    for file in files:
        stat = file.stat()
        rows.append(
            [
                str(file.relative_to(folder)),
                stat.st_size,
                stat.st_mtime_ns,
                stat.st_ctime_ns,
                stat.st_ino,
            ]
        )
    return rows


def _read(memo: Path) -> dict[str, object]:
    try:
        loaded = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write(memo: Path, entries: dict[str, object]) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=memo.parent, prefix=".fingerprints-", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(entries, out)
        os.replace(tmp, memo)
    except OSError as exc:  # a read-only cache: hash again next time
        logger.debug("fingerprint: memo not written (%s)", exc)


def memoised_fingerprint(
    folder: Path, files: list[Path], compute: Callable[[], str], *, memo_dir: Path
) -> str:
    """``compute()`` (the hash of ``files`` in ``folder``), or its remembered value.

    Args:
        folder: The model folder.
        files: The files ``compute`` hashes (their metadata keys the memo).
        compute: Hashes the files' contents.
        memo_dir: Folder of the memo file.
    """
    key = str(folder.resolve())
    signature = _signature(folder, files)
    memo = memo_dir / MEMO_FILE
    entries = _read(memo)
    entry = entries.get(key)
    if isinstance(entry, dict) and entry.get("files") == signature:
        fingerprint = entry.get("fingerprint")
        if isinstance(fingerprint, str) and len(fingerprint) == 64:
            return fingerprint
    fingerprint = compute()
    entries[key] = {"files": signature, "fingerprint": fingerprint}
    _write(memo, entries)
    return fingerprint
