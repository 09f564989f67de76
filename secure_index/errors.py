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
    "CollectionUnavailableError",
    "IntegrityError",
    "OwnershipError",
    "RequestError",
    "RollbackError",
    "SecureIndexError",
    "StateAnchorError",
    "StorageError",
    "VectorSpaceError",
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


class VectorSpaceError(CollectionError):
    """Vectors or a text query of another encoder space than the collection's (409)."""


class OwnershipError(SecureIndexError):
    """A node tried to change documents another node owns."""


ROLLBACK_FIX = (
    "restore the newest backup of the index data folder (with the service stopped), or "
    "accept the loss with `fedembed index accept-rollback --collection {name}`, which "
    "re-anchors the collection at what the folder holds now"
)


class RollbackError(IntegrityError):
    """Acknowledged data is missing: a collection's files are older than what was committed.

    Raised when the store host deleted or rolled back files (a manifest, the log, a CKKS
    block or the whole folder), so opening would silently serve less than was
    acknowledged.

    Args:
        collection: The collection that lost data.
        lost: What was lost, e.g. "log records 81-92" or "block 3 of node 'a'".
        found: What the folder holds instead.
    """

    def __init__(self, collection: str, *, lost: str, found: str) -> None:
        self.path = Path(collection)
        self.collection, self.lost = collection, lost
        SecureIndexError.__init__(
            self,
            f"collection {collection!r} was rolled back or lost data: {lost} were committed "
            f"and acknowledged but are missing ({found})",
            expected="every committed generation, log record and block of the collection",
            fix=ROLLBACK_FIX.format(name=collection),
        )


class StateAnchorError(SecureIndexError):
    """The state anchor (the store's record of its newest committed state) is unusable."""


class CollectionUnavailableError(StorageError):
    """A collection could not be opened; the other collections are served.

    Args:
        name: The collection.
        cause: Why it could not be opened (its problem, expected and fix are kept).
    """

    def __init__(self, name: str, cause: SecureIndexError | FedembedError) -> None:
        self.name, self.cause = name, cause
        super().__init__(
            f"collection {name!r} is unavailable: {cause.problem}",
            expected=cause.expected,
            fix=cause.fix,
        )
