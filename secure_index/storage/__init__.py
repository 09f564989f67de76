"""Crash-safe storage of the index: the encrypted write-ahead log."""

from secure_index.storage.wal import WriteAheadLog

__all__ = ["WriteAheadLog"]
