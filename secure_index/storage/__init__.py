"""Crash-safe storage of the index: the encrypted write-ahead log and the state anchor."""

from secure_index.storage.state_anchor import (
    AnchoredState,
    StateAnchor,
    default_anchor_path,
    resolve_anchor_path,
)
from secure_index.storage.wal import WriteAheadLog

__all__ = [
    "AnchoredState",
    "StateAnchor",
    "WriteAheadLog",
    "default_anchor_path",
    "resolve_anchor_path",
]
