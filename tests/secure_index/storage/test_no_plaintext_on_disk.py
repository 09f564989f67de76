"""No plaintext at rest: sealed files and the log never contain the vectors or strings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from secure_index.sealing.key_encryption_keys import KeyFileKeks
from secure_index.sealing.sealed_file import SealedContext, write_sealed
from secure_index.storage.wal import WriteAheadLog

WINDOW = 16
STRINGS = ["doc-7f3a-confidential-title", "patient 4471 takes warfarin", "owner:node-alpha"]


def _windows(data: bytes) -> set[bytes]:
    return {data[i : i + WINDOW] for i in range(len(data) - WINDOW + 1)}


def _leaks(directory: Path, vector_bytes: bytes) -> list[str]:
    secret_windows = _windows(vector_bytes)
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        content = path.read_bytes()
        if secret_windows & _windows(content):
            found.append(f"{path.name}: vector bytes")
        found += [f"{path.name}: {s!r}" for s in STRINGS if s.encode() in content]
    return found


def test_sealed_files_and_the_log_hold_no_plaintext(tmp_path: Path) -> None:
    # Prepare
    vectors = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    raw = vectors.tobytes()
    keks = KeyFileKeks.create(tmp_path / "kek.json")
    directory = tmp_path / "collection"
    directory.mkdir()
    ctx = SealedContext(tenant="acme", collection="papers", kind="graph", dimension=32)
    # Execute
    write_sealed(directory / "graph-1.sealed", raw, context=ctx, keks=keks, segment_size=4096)
    write_sealed(
        directory / "table-1.sealed",
        json.dumps({"ids": STRINGS}).encode(),
        context=SealedContext(tenant="acme", collection="papers", kind="table"),
        keks=keks,
    )
    log = WriteAheadLog.open(
        directory / "wal",
        context=SealedContext(tenant="acme", collection="papers", kind="wal", dimension=32),
        keks=keks,
    )
    for i, vector in enumerate(vectors):
        log.append([vector.tobytes() + STRINGS[i % len(STRINGS)].encode()])
        if i == 31:
            log.roll()
    log.close()
    control = tmp_path / "control"
    control.mkdir()
    (control / "plain.bin").write_bytes(raw[1000:1100] + STRINGS[1].encode())
    # Assert
    assert len(list(directory.rglob("*.log"))) == 2
    assert _leaks(directory, raw) == []
    assert _leaks(control, raw) == ["plain.bin: vector bytes", f"plain.bin: {STRINGS[1]!r}"]
