"""Errors of the secure index: each says what was wrong, what was expected, how to fix it.

Every failure to decrypt or authenticate a file is the same opaque
:class:`IntegrityError` (tampered, truncated, wrong key, wrong version, swapped or
rolled-back file all look alike to the caller), naming only the file.
"""

from __future__ import annotations

from pathlib import Path

from embedding_core.errors import FedembedError

__all__ = [
    "CollectionError",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "IntegrityError",
    "OwnershipError",
    "RequestError",
    "SecureIndexError",
    "StorageError",
]


class SecureIndexError(FedembedError):
    """Base class of the secure index's user-actionable errors."""


class IntegrityError(SecureIndexError):
    """A file could not be decrypted and authenticated (one opaque error for every cause).

    Args:
        path: The file that was refused.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path} could not be decrypted and authenticated: it was modified, "
            "truncated, swapped with another file, rolled back, written with another "
            "key-encryption key, or written by an unsupported format version",
            expected="a file this index wrote, intact, with a key-encryption key it knows",
            fix=(
                "restore the file from the previous generation or a backup, and check that "
                "the service uses the right key file or FEDEMBED_INDEX_KEK; never edit index "
                "files by hand"
            ),
        )


class StorageError(SecureIndexError):
    """The index could not write to its directory (disk full, read-only, permissions)."""


class CollectionError(SecureIndexError):
    """A collection does not exist, already exists, or does not fit the request."""


class RequestError(SecureIndexError):
    """A request to the index is malformed: ids, vectors, k or filters."""


class CollectionNotFoundError(CollectionError):
    """The named collection does not exist."""


class CollectionExistsError(CollectionError):
    """A collection of that name already exists."""


class OwnershipError(SecureIndexError):
    """A node tried to change documents another node owns."""
