"""Crash-safe storage: atomic files and the encrypted write-ahead log."""

from secure_index.storage.atomic_file import atomic_write, fsync_directory, storage_error
from secure_index.storage.wal import WriteAheadLog

__all__ = ["WriteAheadLog", "atomic_write", "fsync_directory", "storage_error"]
