"""A model folder's hash is remembered across calls only while its files are unchanged."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from embedding_core.fingerprint_memo import MEMO_FILE, memoised_fingerprint


def _model(folder: Path) -> list[Path]:
    folder.mkdir()
    (folder / "config.json").write_text('{"dim": 4}')
    (folder / "model.safetensors").write_bytes(b"weights-v1")
    return sorted(folder.iterdir())


def _hasher(folder: Path, calls: list[int]) -> tuple[list[Path], Callable[[], str]]:
    def compute() -> str:
        calls.append(1)
        digest = hashlib.sha256()
        for file in sorted(folder.iterdir()):
            digest.update(file.read_bytes())
        return digest.hexdigest()

    return sorted(folder.iterdir()), compute


def test_the_hash_is_computed_once_while_the_files_are_unchanged(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    files = _model(folder)
    calls: list[int] = []
    _, compute = _hasher(folder, calls)

    first = memoised_fingerprint(folder, files, compute, memo_dir=tmp_path / "cache")
    second = memoised_fingerprint(folder, files, compute, memo_dir=tmp_path / "cache")

    assert first == second
    assert len(calls) == 1
    assert (tmp_path / "cache" / MEMO_FILE).is_file()


def test_a_rewritten_file_with_its_old_size_and_mtime_is_hashed_again(tmp_path: Path) -> None:
    # Prepare: a remembered hash; then the weights replaced, same size, mtime set back.
    folder = tmp_path / "model"
    files = _model(folder)
    calls: list[int] = []
    _, compute = _hasher(folder, calls)
    before = memoised_fingerprint(folder, files, compute, memo_dir=tmp_path)
    weights = folder / "model.safetensors"
    stat = weights.stat()
    weights.write_bytes(b"weights-v2")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    # Execute
    after = memoised_fingerprint(folder, files, compute, memo_dir=tmp_path)

    # Assert
    assert len(calls) == 2
    assert after != before


def test_an_unwritable_memo_folder_still_gives_the_hash(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    files = _model(folder)
    calls: list[int] = []
    _, compute = _hasher(folder, calls)
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")

    value = memoised_fingerprint(folder, files, compute, memo_dir=blocked)

    assert value == hashlib.sha256(b'{"dim": 4}weights-v1').hexdigest()
