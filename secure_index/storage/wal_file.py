"""One file of the write-ahead log: its name, header, frames, torn-tail repair and reads.

A log file ``wal-<first_seq:020d>.log`` starts with an
:mod:`~secure_index.sealing.envelope_header` header (magic ``b"FEDWAL"``, version, KEK id,
the file's fresh data key wrapped with associated data binding the context and the first
sequence number) and holds frames::

    length (u32) || crc32(length || seq) (u32) || nonce (12) || ciphertext || tag (16)

Record ``seq`` is AES-256-GCM encrypted under the file's data key with associated data =
SHA-256 of the authenticated header || seq (u64). This module creates and authenticates
headers, encodes and scans frames, truncates a torn tail and reads records back; the
group-committed log over these files is :mod:`secure_index.storage.wal`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from crypto.errors import KeyManagementError
from secure_index.atomic_file import atomic_write, storage_error
from secure_index.errors import IntegrityError
from secure_index.sealing.aead import AEAD_KEY_SIZE, AEAD_OVERHEAD, AesGcmAead, DecryptionError
from secure_index.sealing.envelope_header import (
    MAX_HEADER_SIZE,
    ByteReader,
    HeaderFormatError,
    authenticated_data,
    pack_envelope,
    unpack_envelope,
)
from secure_index.sealing.key_encryption_keys import KekProvider

__all__ = [
    "FILE_NAME",
    "FRAME_HEADER_SIZE",
    "MAX_RECORD_SIZE",
    "O_CLOEXEC",
    "TEMP_NAME",
    "WAL_MAGIC",
    "WAL_VERSION",
    "LogFile",
    "count_frames",
    "create_log_file",
    "encode_frame",
    "load_log_file",
    "log_file_name",
    "pwrite_all",
    "read_records",
    "scan_frames",
]

logger = logging.getLogger(__name__)

WAL_MAGIC = b"FEDWAL"
WAL_VERSION = 1
MAX_RECORD_SIZE = 256 << 20
_SEQ_BYTES, _LEN_BYTES, _CRC_BYTES, _CTX_LEN_BYTES = 8, 4, 4, 4
FRAME_HEADER_SIZE = _LEN_BYTES + _CRC_BYTES
FILE_NAME = re.compile(r"^wal-(\d{20})\.log$")
TEMP_NAME = re.compile(r"^\.wal-\d{20}\.log\.[0-9a-f]+\.tmp$")
_ZERO_CHECK_CHUNK = 1 << 20
O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)


def log_file_name(first_seq: int) -> str:
    """The name of the log file whose first record is ``first_seq``."""
    return f"wal-{first_seq:020d}.log"


def _frame_crc(length: bytes, seq: int) -> int:
    return zlib.crc32(length + seq.to_bytes(_SEQ_BYTES, "big"))


@dataclass
class LogFile:
    """An open log file: its place in the sequence, data key and committed extent."""

    path: Path
    first_seq: int
    header_size: int
    aead: AesGcmAead
    digest: bytes
    records: int = 0
    size: int = 0  # committed bytes (header and complete, fsync'ed frames)
    fd: int = -1  # write descriptor, only for the current file

    def record_ad(self, seq: int) -> bytes:
        """The associated data that binds record ``seq`` to this file."""
        return self.digest + seq.to_bytes(_SEQ_BYTES, "big")


def load_log_file(path: Path, first_seq: int, *, context_json: bytes, keks: KekProvider) -> LogFile:
    """Authenticate the header of an existing log file and unwrap its data key.

    Raises:
        IntegrityError: When the header, context or first seq does not match.
        KeyManagementError: When the file's KEK id is unknown or retired.
        StorageError: When the file cannot be read.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_HEADER_SIZE)
        envelope = unpack_envelope(head, WAL_MAGIC)
        reader = ByteReader(envelope.fields)
        seq = reader.uint(_SEQ_BYTES)
        stored = reader.take(reader.uint(_CTX_LEN_BYTES))
        if envelope.version != WAL_VERSION or reader.remaining() or seq != first_seq:
            raise HeaderFormatError
        if stored != context_json or first_seq < 1:
            raise HeaderFormatError
        ad = envelope.authenticated
        key = keks.unwrap(envelope.wrapped, associated_data=ad)
        if len(key) != AEAD_KEY_SIZE:
            raise DecryptionError
    except (HeaderFormatError, DecryptionError, ValueError):
        raise IntegrityError(path) from None
    except KeyManagementError as exc:
        raise KeyManagementError(
            f"{path}: {exc.problem}", expected=exc.expected, fix=exc.fix
        ) from None
    except OSError as exc:
        raise storage_error(exc, path=path, operation="read") from exc
    digest = hashlib.sha256(ad).digest()
    return LogFile(path, first_seq, envelope.length, AesGcmAead(key), digest, 0, envelope.length)


def count_frames(file: LogFile, *, last: bool) -> None:
    """Count the complete frames of ``file``; truncate a torn tail of the last file."""
    try:
        with open(file.path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            frames, torn_at = scan_frames(f.fileno(), file, end, last=last)
        if torn_at is not None:
            logger.warning(
                "wal: dropped a torn tail of %d byte(s) after seq %d in %s",
                end - torn_at,
                file.first_seq + len(frames) - 1,
                file.path.name,
            )
            fd = os.open(file.path, os.O_WRONLY | O_CLOEXEC)
            try:
                os.ftruncate(fd, torn_at)
                os.fsync(fd)
            finally:
                os.close(fd)
            end = torn_at
    except OSError as exc:
        raise storage_error(exc, path=file.path, operation="repair the log") from exc
    file.records, file.size = len(frames), end


def create_log_file(
    directory: Path, first_seq: int, *, context_json: bytes, keks: KekProvider
) -> LogFile:
    """Write the header of a new log file with a fresh data key and open it for appends.

    Raises:
        StorageError: When the file cannot be written or opened.
    """
    fields = (
        first_seq.to_bytes(_SEQ_BYTES, "big")
        + len(context_json).to_bytes(_CTX_LEN_BYTES, "big")
        + context_json
    )
    ad = authenticated_data(WAL_MAGIC, WAL_VERSION, fields)
    key = secrets.token_bytes(AEAD_KEY_SIZE)
    header = pack_envelope(WAL_MAGIC, WAL_VERSION, keks.wrap(key, associated_data=ad), fields)
    path = directory / log_file_name(first_seq)
    atomic_write(path, [header])
    try:
        fd = os.open(path, os.O_WRONLY | O_CLOEXEC)
    except OSError as exc:
        raise storage_error(exc, path=path, operation="open the log") from exc
    digest = hashlib.sha256(ad).digest()
    return LogFile(path, first_seq, len(header), AesGcmAead(key), digest, 0, len(header), fd)


def encode_frame(
    file: LogFile, seq: int, record: bytes | bytearray | memoryview
) -> tuple[bytes, bytes, bytes]:
    """The length, check and sealed parts of the frame of record ``seq`` in ``file``."""
    sealed = file.aead.encrypt(record, file.record_ad(seq))
    length = len(sealed).to_bytes(_LEN_BYTES, "big")
    return length, _frame_crc(length, seq).to_bytes(_CRC_BYTES, "big"), sealed


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of ``fd`` (``pwrite`` may write less)."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def scan_frames(
    fd: int, file: LogFile, end: int, *, last: bool
) -> tuple[list[tuple[int, int]], int | None]:
    """Frames ``(offset, length)`` of ``file`` up to ``end`` and where a torn tail starts.

    A torn tail is a frame cut short by ``end``, or a zero-filled rest of the file.

    Raises:
        IntegrityError: On damage, or on a torn tail of a file that is not the last.
    """
    frames: list[tuple[int, int]] = []
    pos, seq = file.header_size, file.first_seq
    while pos < end:
        head = os.pread(fd, FRAME_HEADER_SIZE, pos)
        if len(head) == FRAME_HEADER_SIZE and pos + FRAME_HEADER_SIZE <= end:
            length = int.from_bytes(head[:_LEN_BYTES], "big")
            crc = int.from_bytes(head[_LEN_BYTES:], "big")
            if crc == _frame_crc(head[:_LEN_BYTES], seq) and (
                AEAD_OVERHEAD <= length <= MAX_RECORD_SIZE + AEAD_OVERHEAD
            ):
                if pos + FRAME_HEADER_SIZE + length > end:
                    break  # the frame is cut short: torn
                frames.append((pos + FRAME_HEADER_SIZE, length))
                pos += FRAME_HEADER_SIZE + length
                seq += 1
                continue
            if not _all_zero(fd, pos, end):
                raise IntegrityError(file.path)
        break  # a cut frame header or a zero-filled tail: torn
    else:
        return frames, None
    if not last:
        raise IntegrityError(file.path)
    return frames, pos


def _all_zero(fd: int, start: int, end: int) -> bool:
    for offset in range(start, end, _ZERO_CHECK_CHUNK):
        if os.pread(fd, min(_ZERO_CHECK_CHUNK, end - offset), offset).count(0) != min(
            _ZERO_CHECK_CHUNK, end - offset
        ):
            return False
    return True


def read_records(
    file: LogFile, size: int, records: int, after_seq: int
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(seq, record)`` of the first ``records`` frames of ``file`` after ``after_seq``.

    Raises:
        IntegrityError: When the file is missing, or a frame or record does not authenticate.
        StorageError: When the file cannot be opened.
    """
    try:
        fd = os.open(file.path, os.O_RDONLY | O_CLOEXEC)
    except FileNotFoundError:
        raise IntegrityError(file.path) from None
    except OSError as exc:
        raise storage_error(exc, path=file.path, operation="read") from exc
    try:
        frames, torn_at = scan_frames(fd, file, size, last=False)
        if torn_at is not None or len(frames) != records:
            raise IntegrityError(file.path)
        for index, (offset, length) in enumerate(frames):
            seq = file.first_seq + index
            if seq <= after_seq:
                continue
            sealed = os.pread(fd, length, offset)
            try:
                yield seq, file.aead.decrypt(sealed, file.record_ad(seq))
            except DecryptionError:
                raise IntegrityError(file.path) from None
    finally:
        os.close(fd)
