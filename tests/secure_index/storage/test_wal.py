"""Write-ahead log: durable ordered records, group commit under concurrency, restart
continuity, rolling and discarding, torn-tail repair and refusal of any other damage."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import KeyManagementError
from secure_index.errors import IntegrityError
from secure_index.sealing.key_encryption_keys import KeyFileKeks
from secure_index.sealing.sealed_file import SealedContext
from secure_index.storage.wal import WriteAheadLog

CTX = SealedContext(tenant="acme", collection="papers", kind="wal", dimension=384, metric="cosine")
FRAME = 8 + 12 + 16  # frame header + nonce + tag around each record


@pytest.fixture(scope="module")
def module_keks(tmp_path_factory: pytest.TempPathFactory) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path_factory.mktemp("keys") / "kek.json")


@pytest.fixture
def keks(tmp_path: Path) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path / "kek.json")


def _open(directory: Path, keks: KeyFileKeks, context: SealedContext = CTX) -> WriteAheadLog:
    return WriteAheadLog.open(directory, context=context, keks=keks)


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("wal-*.log"))


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.lists(st.binary(max_size=300), min_size=1, max_size=5), max_size=8))
def test_round_trip(module_keks: KeyFileKeks, batches: list[list[bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = _open(Path(tmp) / "wal", module_keks)
        acks = [log.append(batch) for batch in batches]
        replayed = list(log.replay())
        log.close()
        reopened = _open(Path(tmp) / "wal", module_keks)
        again = list(reopened.replay())
        reopened.close()
    records = [r for batch in batches for r in batch]
    assert replayed == again == list(enumerate(records, start=1))
    assert acks == [sum(len(b) for b in batches[: i + 1]) for i in range(len(batches))]


def test_file_header_and_frames(tmp_path: Path, keks: KeyFileKeks) -> None:
    log = _open(tmp_path / "wal", keks)
    log.append([b"x" * 10])
    log.close()
    [path] = _files(tmp_path / "wal")
    raw = path.read_bytes()
    assert path.name == "wal-00000000000000000001.log"
    assert raw.startswith(b"FEDWAL\x00\x01\x05kek-1")
    assert CTX.associated_data() in raw
    assert raw[-(FRAME + 10) :][:4] == (12 + 10 + 16).to_bytes(4, "big")
    assert b"x" * 10 not in raw


def test_seqs_continue_across_restarts_rolls_and_discards(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    directory = tmp_path / "wal"
    log = _open(directory, keks)
    log.append([b"a", b"b"])
    log.close()
    log = _open(directory, keks)
    third = log.append([b"c"])
    rolled_at = log.roll()
    fourth = log.append([b"d"])
    log.roll()
    log.roll()  # an empty current file is replaced, not kept
    names = [p.name for p in _files(directory)]
    removed = log.discard_through(fourth)
    log.close()
    log = _open(directory, keks)
    last_after_restart = log.last_seq
    fifth = log.append([b"e"])
    assert (third, rolled_at, fourth, fifth) == (3, 3, 4, 5)
    assert names == [
        "wal-00000000000000000001.log",
        "wal-00000000000000000004.log",
        "wal-00000000000000000005.log",
    ]
    assert removed == 2
    assert last_after_restart == 4
    assert list(log.replay()) == [(5, b"e")]
    assert list(log.replay(after_seq=5)) == []
    log.close()


def test_discard_through_keeps_files_with_later_records(tmp_path: Path, keks: KeyFileKeks) -> None:
    log = _open(tmp_path / "wal", keks)
    log.append([b"1", b"2"])
    log.roll()
    log.append([b"3", b"4"])
    log.roll()
    log.append([b"5"])
    kept = log.discard_through(3)  # file 2 holds seq 4: kept
    dropped = log.discard_through(4)
    assert (kept, dropped) == (1, 1)
    assert list(log.replay(after_seq=2)) == [(5, b"5")]
    log.close()


def test_concurrent_appends_share_fsyncs_and_keep_every_record(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    # Prepare
    log = _open(tmp_path / "wal", keks)
    threads_n, per_thread = 16, 40
    acks: dict[int, bytes] = {}
    lock = threading.Lock()
    start = threading.Barrier(threads_n)

    def worker(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            record = f"thread {t} record {i}".encode()
            seq = log.append([record])
            with lock:
                acks[seq] = record

    # Execute
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replayed = dict(log.replay())
    commits = log.commits
    log.close()
    # Assert
    total = threads_n * per_thread
    assert sorted(acks) == list(range(1, total + 1))
    assert replayed == acks
    assert commits < total  # group commit: some fsyncs were shared
    assert dict(_open(tmp_path / "wal", keks).replay()) == acks


def _log_with(tmp_path: Path, keks: KeyFileKeks, records: list[bytes]) -> tuple[Path, list[int]]:
    directory = tmp_path / "wal"
    log = _open(directory, keks)
    sizes = []
    for record in records:
        log.append([record])
        sizes.append(_files(directory)[-1].stat().st_size)
    log.close()
    return directory, sizes


@pytest.mark.parametrize("cut", [1, 5, 20, 30, 35])
def test_a_torn_tail_is_dropped_and_truncated(
    tmp_path: Path, keks: KeyFileKeks, caplog: pytest.LogCaptureFixture, cut: int
) -> None:
    # Prepare: the last record loses ``cut`` bytes (35 leaves 3 bytes of its frame header).
    directory, sizes = _log_with(tmp_path, keks, [b"one", b"two", b"three"])
    path = _files(directory)[-1]
    os.truncate(path, sizes[-1] - cut)
    # Execute
    with caplog.at_level(logging.WARNING):
        log = _open(directory, keks)
    replayed = list(log.replay())
    size_after_open = path.stat().st_size
    next_seq = log.append([b"four"])
    # Assert
    assert replayed == [(1, b"one"), (2, b"two")]
    assert size_after_open == sizes[1]
    assert next_seq == 3
    assert any("torn tail" in r.getMessage() for r in caplog.records)
    assert list(log.replay()) == [(1, b"one"), (2, b"two"), (3, b"four")]
    log.close()


def test_a_zero_filled_tail_is_dropped(tmp_path: Path, keks: KeyFileKeks) -> None:
    directory, sizes = _log_with(tmp_path, keks, [b"one", b"two"])
    with open(_files(directory)[-1], "ab") as f:
        f.write(bytes(4096))
    log = _open(directory, keks)
    assert list(log.replay()) == [(1, b"one"), (2, b"two")]
    assert _files(directory)[-1].stat().st_size == sizes[-1]
    log.close()


def _corrupt(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def _open_and_replay(
    directory: Path, keks: KeyFileKeks, context: SealedContext
) -> list[tuple[int, bytes]]:
    log = _open(directory, keks, context)
    try:
        return list(log.replay())
    finally:
        log.close()


def _refused(directory: Path, keks: KeyFileKeks, path: Path, context: SealedContext = CTX) -> None:
    with pytest.raises(IntegrityError) as excinfo:
        _open_and_replay(directory, keks, context)
    assert excinfo.value.path == path
    assert "could not be decrypted and authenticated" in str(excinfo.value)


@pytest.mark.parametrize(
    "where",
    ["record-ciphertext", "record-tag", "frame-length", "frame-crc", "last-record"],
)
def test_damage_in_the_middle_is_refused(tmp_path: Path, keks: KeyFileKeks, where: str) -> None:
    directory, sizes = _log_with(tmp_path, keks, [b"one" * 5, b"two" * 5, b"three" * 5])
    path = _files(directory)[-1]
    second = sizes[0]  # offset of record 2's frame
    offset = {
        "record-ciphertext": second + 8 + 14,
        "record-tag": sizes[1] - 1,
        "frame-length": second + 3,
        "frame-crc": second + 6,
        "last-record": sizes[2] - 4,
    }[where]
    _corrupt(path, offset)
    _refused(directory, keks, path)


def test_swapped_records_are_refused(tmp_path: Path, keks: KeyFileKeks) -> None:
    directory, sizes = _log_with(tmp_path, keks, [b"aaaa", b"bbbb", b"cccc"])
    path = _files(directory)[-1]
    raw = path.read_bytes()
    first, second = raw[sizes[0] - (FRAME + 4) : sizes[0]], raw[sizes[0] : sizes[1]]
    path.write_bytes(raw[: sizes[0] - (FRAME + 4)] + second + first + raw[sizes[1] :])
    _refused(directory, keks, path)


def test_damage_in_a_closed_file_is_not_a_torn_tail(tmp_path: Path, keks: KeyFileKeks) -> None:
    directory = tmp_path / "wal"
    log = _open(directory, keks)
    log.append([b"one", b"two"])
    log.roll()
    log.append([b"three"])
    log.close()
    first = _files(directory)[0]
    os.truncate(first, first.stat().st_size - 3)
    _refused(directory, keks, first)


def test_a_missing_middle_file_is_refused(tmp_path: Path, keks: KeyFileKeks) -> None:
    directory = tmp_path / "wal"
    log = _open(directory, keks)
    for record in (b"1", b"2", b"3"):
        log.append([record])
        log.roll()
    log.close()
    files = _files(directory)
    files[1].unlink()
    _refused(directory, keks, files[2])


def test_a_renamed_file_is_refused(tmp_path: Path, keks: KeyFileKeks) -> None:
    directory, _ = _log_with(tmp_path, keks, [b"one"])
    [path] = _files(directory)
    renamed = directory / "wal-00000000000000000007.log"
    path.rename(renamed)
    _refused(directory, keks, renamed)


@pytest.mark.parametrize(
    "context",
    [
        SealedContext(
            tenant="acme", collection="other", kind="wal", dimension=384, metric="cosine"
        ),
        SealedContext(
            tenant="acme", collection="papers", kind="wal", dimension=768, metric="cosine"
        ),
    ],
    ids=["collection", "dimension"],
)
def test_a_log_of_another_context_is_refused(
    tmp_path: Path, keks: KeyFileKeks, context: SealedContext
) -> None:
    directory, _ = _log_with(tmp_path, keks, [b"one"])
    _refused(directory, keks, _files(directory)[0], context)


def test_wrong_and_retired_keks(tmp_path: Path, keks: KeyFileKeks) -> None:
    directory, _ = _log_with(tmp_path, keks, [b"one"])
    path = _files(directory)[0]
    _refused(directory, KeyFileKeks.create(tmp_path / "stranger.json"), path)
    keks.rotate()
    keks.retire("kek-1")
    with pytest.raises(KeyManagementError, match="kek-1 was retired"):
        _open(directory, keks)


def test_new_files_use_the_primary_kek_after_rotation(tmp_path: Path, keks: KeyFileKeks) -> None:
    log = _open(tmp_path / "wal", keks)
    log.append([b"old"])
    keks.rotate()
    log.roll()
    log.append([b"new"])
    log.close()
    heads = [p.read_bytes()[:14] for p in _files(tmp_path / "wal")]
    assert heads == [b"FEDWAL\x00\x01\x05kek-1", b"FEDWAL\x00\x01\x05kek-2"]


def test_misuse_is_a_value_error(tmp_path: Path, keks: KeyFileKeks) -> None:
    log = _open(tmp_path / "wal", keks)
    with pytest.raises(ValueError, match="at least one"):
        log.append([])
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.append([b"late"])
    with pytest.raises(ValueError, match="closed"):
        log.roll()
