"""A KEK provider whose KMS fails part-way: the failed-create tests of both collection kinds."""

from __future__ import annotations

from crypto.errors import KeyManagementError
from secure_index.sealing import KeyFileKeks, WrappedKey

__all__ = ["KmsOutage"]


class KmsOutage:
    """A KEK provider whose KMS fails from the ``fail_at``-th wrap on (until healed)."""

    def __init__(self, keks: KeyFileKeks, fail_at: int) -> None:
        self._keks, self.fail_at, self.wraps = keks, fail_at, 0

    @property
    def primary_id(self) -> str:
        return self._keks.primary_id

    def wrap(self, data_key: bytes, *, associated_data: bytes) -> WrappedKey:
        self.wraps += 1
        if self.fail_at and self.wraps >= self.fail_at:
            raise KeyManagementError("the KMS is unreachable", expected="a KMS", fix="retry")
        return self._keks.wrap(data_key, associated_data=associated_data)

    def unwrap(self, wrapped: WrappedKey, *, associated_data: bytes) -> bytes:
        return self._keks.unwrap(wrapped, associated_data=associated_data)
