"""Sealed-file and write-ahead-log throughput next to plain file I/O (no assertion).

    .venv/bin/python benchmarks/bench_sealed_file.py --size-mb 168 --repeats 5

Prints one JSON object per measurement:

- ``sealed_file``: ``write_sealed`` (encrypt + temp file + fsync + rename) and
  ``open_sealed`` + ``read_into`` a memfd mapping (decrypt on 1 and 2 threads) of
  ``--size-mb`` random bytes, against a plain write (write + fsync) and a plain
  ``readinto`` of the same bytes into a memfd mapping; medians of ``--repeats``
  interleaved runs, files in the page cache for the reads.
- ``wal_group_commit``: durable single-record appends from 1 thread and from
  ``--threads`` threads, records per second and fsyncs (commits) used.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secure_index.sealing import KeyFileKeks, SealedContext, open_sealed, write_sealed
from secure_index.storage import WriteAheadLog

MB = 1_000_000


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _memfd(size: int) -> tuple[int, mmap.mmap]:
    fd = os.memfd_create("bench", os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    return fd, mmap.mmap(fd, size)


def bench_sealed(work: Path, size: int, repeats: int) -> dict[str, Any]:
    keks = KeyFileKeks.create(work / "kek.json")
    ctx = SealedContext(tenant="bench", collection="c", kind="graph", dimension=384)
    data = os.urandom(size)
    sealed, plain = work / "graph.sealed", work / "graph.bin"
    fd, image = _memfd(size)
    view = memoryview(image)

    def write_plain() -> None:
        out = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(out, data)
            os.fsync(out)
        finally:
            os.close(out)

    def read_plain() -> None:
        with open(plain, "rb", buffering=0) as f:
            f.readinto(view)

    def read_sealed(threads: int) -> Callable[[], None]:
        def run() -> None:
            with open_sealed(sealed, expected=ctx, keks=keks) as reader:
                reader.read_into(view, threads=threads)

        return run

    times: dict[str, list[float]] = {}
    runs: dict[str, Callable[[], object]] = {
        "write_sealed": lambda: write_sealed(sealed, data, context=ctx, keks=keks),
        "plain_write": write_plain,
        "open_read_into_2_threads": read_sealed(2),
        "open_read_into_1_thread": read_sealed(1),
        "plain_read": read_plain,
    }
    for _ in range(repeats):
        for name, fn in runs.items():
            times.setdefault(name, []).append(_timed(fn))
    check = bytes(view[:4096]) == data[:4096] and bytes(view[-4096:]) == data[-4096:]
    view.release()
    image.close()
    os.close(fd)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    result: dict[str, Any] = {"bench": "sealed_file", "size_mb": size / MB, "repeats": repeats}
    for name, seconds in medians.items():
        result[f"{name}_s"] = round(seconds, 4)
        result[f"{name}_mb_s"] = round(size / MB / seconds, 1)
    result["read_ratio_sealed_2_threads_vs_plain"] = round(
        medians["open_read_into_2_threads"] / medians["plain_read"], 2
    )
    result["write_ratio_sealed_vs_plain"] = round(
        medians["write_sealed"] / medians["plain_write"], 2
    )
    result["decrypted_bytes_match"] = check
    return result


def bench_wal(work: Path, records: int, threads: int) -> dict[str, Any]:
    keks = KeyFileKeks.create(work / "wal-kek.json")
    ctx = SealedContext(tenant="bench", collection="c", kind="wal", dimension=384)
    record = os.urandom(384 * 4 + 64)  # one float32 vector of d=384 and an id
    result: dict[str, Any] = {"bench": "wal_group_commit", "records": records}
    for n in (1, threads):
        log = WriteAheadLog.open(work / f"wal-{n}", context=ctx, keks=keks)
        per = records // n
        barrier = threading.Barrier(n)

        def worker(
            log: WriteAheadLog = log, per: int = per, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            for _ in range(per):
                log.append([record])

        pool = [threading.Thread(target=worker) for _ in range(n)]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        seconds = time.perf_counter() - start
        result[f"threads_{n}_records_s"] = round(per * n / seconds, 1)
        result[f"threads_{n}_commits"] = log.commits
        log.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=168.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--wal-records", type=int, default=640)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        env = {"python": platform.python_version(), "cpus": os.cpu_count()}
        sealed = bench_sealed(work, int(args.size_mb * MB), args.repeats)
        print(json.dumps({**sealed, **env}))
        print(json.dumps({**bench_wal(work, args.wal_records, args.threads), **env}))


if __name__ == "__main__":
    main()
