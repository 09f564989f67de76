"""Encrypted write-ahead log with group commit: a record is durable before it is acknowledged.

The log is a directory of files ``wal-<first_seq:020d>.log``. Each file starts with an
:mod:`~secure_index.sealing.envelope_header` header (magic ``b"FEDWAL"``, version, KEK id,
the file's fresh data key wrapped with associated data binding the context and the first
sequence number) and holds frames::

    length (u32) || crc32(length || seq) (u32) || nonce (12) || ciphertext || tag (16)

Record ``seq`` is AES-256-GCM encrypted under the file's data key with associated data =
SHA-256 of the authenticated header || seq (u64), so a record cannot be moved within or
between files. Sequence numbers are implicit (first seq of the file + position), start at
1 and continue across files and restarts (the newest file is always kept).

Durability and group commit (as in database logs since Gawlick and Kinkade's IMS FastPath,
1985; DeWitt et al., "Implementation Techniques for Main Memory Database Systems",
SIGMOD 1984): appenders queue their records; one of them becomes the leader, writes
everyone's pending records with one ``write`` and one ``fdatasync`` and wakes them all, so
concurrent appenders share the fsync latency. ``append`` returns only after the fsync.

Crash recovery: a torn tail (an incomplete last frame of the last file, or a zero-filled
tail) is dropped with a warning and the file truncated when the log is opened. A frame
whose length check fails elsewhere, a record that does not authenticate, a missing file in
the middle or a header that does not match is damage: ``IntegrityError(path)``. A failed
append is truncated away (never acknowledged, never replayed as a half record).

The file format (headers, frames, torn-tail scans, record reads) is in
:mod:`secure_index.storage.wal_file`; its constants are re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from secure_index.atomic_file import fsync_directory, storage_error
from secure_index.errors import IntegrityError, StorageError
from secure_index.sealing.key_encryption_keys import KekProvider
from secure_index.sealing.sealed_file import SealedContext
from secure_index.storage.wal_file import (
    FILE_NAME,
    MAX_RECORD_SIZE,
    O_CLOEXEC,
    TEMP_NAME,
    WAL_MAGIC,
    WAL_VERSION,
    LogFile,
    count_frames,
    create_log_file,
    encode_frame,
    load_log_file,
    pwrite_all,
    read_records,
)

__all__ = ["MAX_RECORD_SIZE", "WAL_MAGIC", "WAL_VERSION", "WriteAheadLog"]

logger = logging.getLogger(__name__)


@dataclass
class _Batch:
    records: Sequence[bytes | bytearray | memoryview]
    done: bool = False
    last_seq: int = 0
    error: BaseException | None = field(default=None)


class WriteAheadLog:
    """An encrypted, group-committed write-ahead log in one directory (use :meth:`open`)."""

    def __init__(self, directory: Path, context: SealedContext, keks: KekProvider) -> None:
        self.directory = directory
        self._context = context
        self._context_json = context.associated_data()
        self._keks = keks
        self._closed_files: list[LogFile] = []
        self._current: LogFile | None = None
        self._last_seq = 0
        self._cond = threading.Condition()
        self._pending: list[_Batch] = []
        self._flushing = False
        self._closed = False
        self._broken: StorageError | None = None
        self._commits = 0

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        context: SealedContext,
        keks: KekProvider,
        min_next_seq: int = 1,
    ) -> WriteAheadLog:
        """Open (or create) the log in ``directory`` and repair a torn tail.

        ``min_next_seq`` is the first sequence number the caller has not folded into a
        snapshot: a new (or deleted and re-created) log starts there, so fresh records
        are never mistaken for folded ones; an existing log that ends before it was
        rolled back and is refused.

        Raises:
            IntegrityError: When a file's header, context, first seq or frames are damaged,
                or a file is missing between two others.
            KeyManagementError: When a file's KEK id is unknown or retired.
            StorageError: When the directory or a file cannot be created or repaired.
        """
        directory = Path(directory)
        log = cls(directory, context, keks)
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            names = sorted(os.listdir(directory))
        except OSError as exc:
            raise storage_error(exc, path=directory, operation="open the log directory") from exc
        for name in names:
            if TEMP_NAME.match(name):  # an interrupted file creation: header bytes only
                with contextlib.suppress(OSError):
                    (directory / name).unlink()
        files = [
            load_log_file(directory / n, int(m.group(1)), context_json=log._context_json, keks=keks)
            for n in names
            if (m := FILE_NAME.match(n))
        ]
        for i, file in enumerate(files):
            last = i == len(files) - 1
            count_frames(file, last=last)
            if i and file.first_seq != files[i - 1].first_seq + files[i - 1].records:
                raise IntegrityError(file.path)
        if files:
            log._closed_files = files[:-1]
            current = files[-1]
            log._last_seq = current.first_seq + current.records - 1
            try:
                current.fd = os.open(current.path, os.O_WRONLY | O_CLOEXEC)
            except OSError as exc:
                raise storage_error(exc, path=current.path, operation="open the log") from exc
            log._current = current
            if log._last_seq < min_next_seq - 1:
                raise IntegrityError(directory)
        else:
            log._current = log._create(max(1, min_next_seq))
            log._last_seq = max(1, min_next_seq) - 1
        logger.info(
            "wal: opened %s, %d file(s), last seq %d", directory, len(files) or 1, log._last_seq
        )
        return log

    # -- appending -------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the last durable record (0 when none was ever written)."""
        return self._last_seq

    @property
    def first_seq(self) -> int:
        """The seq of the oldest record the log still holds (or of its next record)."""
        with self._cond:
            files = [*self._closed_files, *([self._current] if self._current else [])]
            return files[0].first_seq if files else self._last_seq + 1

    @property
    def commits(self) -> int:
        """Group commits (one write + one fdatasync each) since the log was opened."""
        return self._commits

    def append(self, records: Sequence[bytes]) -> int:
        """Append ``records`` durably (written and fdatasync'ed before this returns).

        Thread-safe; concurrent callers share one fsync (group commit).

        Returns:
            The seq of the last of ``records`` (they get consecutive seqs).

        Raises:
            StorageError: When the write or fsync fails; nothing of the call is acknowledged.
            ValueError: When ``records`` is empty, a record is too large or the log is closed.
        """
        if not records:
            raise ValueError("append needs at least one record")
        for record in records:
            if memoryview(record).nbytes > MAX_RECORD_SIZE:
                raise ValueError(f"a log record is limited to {MAX_RECORD_SIZE} bytes")
        batch = _Batch(records)
        with self._cond:
            self._pending.append(batch)
            while not batch.done:
                if self._flushing:
                    self._cond.wait()
                    continue
                self._lead()
        if batch.error is not None:
            raise batch.error
        return batch.last_seq

    def _lead(self) -> None:
        """Commit every pending batch as the leader (called and returning with the lock)."""
        group, self._pending = self._pending, []
        file, start = self._current, self._last_seq
        failure: BaseException | None = self._broken
        if self._closed or file is None:
            failure = ValueError(f"the write-ahead log {self.directory} is closed")
        written = 0
        if failure is None and file is not None:
            self._flushing = True
            self._cond.release()
            try:
                written = self._write(file, start, group)
            except BaseException as exc:  # handed to every waiter of the group below
                failure = exc
            finally:
                self._cond.acquire()
                self._flushing = False
        if failure is None and file is not None:
            file.size += written
            file.records += group[-1].last_seq - start
            self._last_seq = group[-1].last_seq
            self._commits += 1
        for batch in group:
            batch.error, batch.done = failure, True
        self._cond.notify_all()

    def _write(self, file: LogFile, start: int, group: list[_Batch]) -> int:
        """Encrypt, write and sync ``group`` after seq ``start``; returns the bytes written.

        Called by the leader without the lock. On failure the file is truncated back to
        its committed size (or the log is marked broken when even that fails).
        """
        seq = start
        parts: list[bytes] = []
        for batch in group:
            for record in batch.records:
                seq += 1
                parts += encode_frame(file, seq, record)
            batch.last_seq = seq
        data = b"".join(parts)
        try:
            pwrite_all(file.fd, data, file.size)
            os.fdatasync(file.fd)
        except OSError as exc:
            error = storage_error(exc, path=file.path, operation="append to")
            try:
                os.ftruncate(file.fd, file.size)
                os.fsync(file.fd)
            except OSError:
                self._broken = error  # the file may end in a partial frame: stop appending
                logger.error("wal: %s could not be truncated after a failed append", file.path)
            raise error from exc
        return len(data)

    # -- rolling, discarding, replaying -----------------------------------------------------

    def roll(self) -> int:
        """Close the current file and start a new one with a new data key.

        Returns:
            The last seq so far (every record up to it is in a closed file).

        Raises:
            StorageError: When the new file cannot be created or the log is broken.
        """
        with self._cond:
            while self._flushing:
                self._cond.wait()
            old = self._require_open()
            if self._broken is not None:
                raise self._broken
            new = self._create(self._last_seq + 1)  # replaces ``old`` if it has no records
            os.close(old.fd)
            old.fd = -1
            if old.records:
                self._closed_files.append(old)
            self._current = new
            logger.info("wal: rolled to %s after seq %d", new.path.name, self._last_seq)
            return self._last_seq

    def discard_through(self, seq: int) -> int:
        """Delete the closed files whose records all have seqs <= ``seq``.

        Returns:
            The number of files removed.
        """
        removed = 0
        with self._cond:
            try:
                while self._closed_files and (
                    self._closed_files[0].first_seq + self._closed_files[0].records - 1 <= seq
                ):
                    self._closed_files[0].path.unlink()
                    self._closed_files.pop(0)
                    removed += 1
            except OSError as exc:
                raise storage_error(
                    exc, path=self.directory, operation="discard log files in"
                ) from exc
            if removed:
                fsync_directory(self.directory)
        if removed:
            logger.info("wal: discarded %d file(s) through seq %d", removed, seq)
        return removed

    def replay(self, *, after_seq: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, record)`` for every durable record after ``after_seq``, in order.

        Raises:
            IntegrityError: When a record or frame does not authenticate (any damage).
        """
        with self._cond:
            files = [*self._closed_files, *([self._current] if self._current else [])]
            extents = [(f, f.size, f.records) for f in files]
        for file, size, records in extents:
            if file.first_seq + records - 1 <= after_seq:
                continue
            yield from read_records(file, size, records, after_seq)

    def close(self) -> None:
        """Wait for an in-flight commit and close the log (idempotent)."""
        with self._cond:
            while self._flushing:
                self._cond.wait()
            if self._closed:
                return
            self._closed = True
            if self._current is not None and self._current.fd >= 0:
                os.close(self._current.fd)
                self._current.fd = -1
        logger.info("wal: closed %s at seq %d", self.directory, self._last_seq)

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self, first_seq: int) -> LogFile:
        return create_log_file(
            self.directory, first_seq, context_json=self._context_json, keks=self._keks
        )

    def _require_open(self) -> LogFile:
        if self._closed or self._current is None:
            raise ValueError(f"the write-ahead log {self.directory} is closed")
        return self._current
