"""Crash-safe storage: atomic files and the encrypted write-ahead log."""
