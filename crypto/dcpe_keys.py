"""Versioned DCPE keys of one tenant in one JSON file: create, load, rotate, retire, re-encrypt.

The file (mode 0600, written atomically: temporary file, fsync, ``os.replace``, fsync of
the folder) holds every live version of the tenant's Scale-And-Perturb key (see
:mod:`crypto.dcpe`) and names the current one. Rotation adds a version (fresh
``s`` and ``K``) and makes it current; the old version stays until it is retired, so its
ciphertexts can be re-encrypted with :meth:`DcpeKeyring.reencrypt`. All vectors of one
index must be under one version to be comparable: the data owner or gateway re-encrypts
and re-uploads them, then retires the old version. Retired ids are remembered and never
reused. The file is a secret file (:mod:`crypto.secret_files`): one that group or others
may access, or that another user owns, is refused (``chmod 600`` fixes it).
The keyring serialises its own updates with a lock; it does not lock across processes.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from crypto.dcpe import DcpeCiphertext, DcpeKey, ScaleAndPerturb
from crypto.errors import KeyManagementError
from crypto.secret_files import read_secret_file, write_secret_file

__all__ = ["DcpeKeyring"]

logger = logging.getLogger(__name__)

KEYRING_FORMAT = "fedembed-dcpe-keyring"
KEYRING_VERSION = 1
_FIELDS = ("format", "version", "tenant", "current", "next_version", "retired", "keys")
_FIX_FILE = "restore the keyring from its backup; never edit key files by hand"


def _malformed(path: Path, problem: str, expected: str) -> KeyManagementError:
    return KeyManagementError(f"{path}: {problem}", expected=expected, fix=_FIX_FILE)


class DcpeKeyring:
    """The DCPE key versions of one tenant, persisted in one JSON file.

    Use :meth:`create` or :meth:`load`; the constructor does not touch the disk.

    Args:
        path: The keyring file.
        tenant: The tenant every version belongs to.
        keys: The live versions by key id.
        current: The id of the version new encryptions use.
        next_version: The number the next rotation's key id carries.
        retired: Ids of retired versions (never reused).
    """

    def __init__(
        self,
        path: Path,
        *,
        tenant: str,
        keys: dict[str, DcpeKey],
        current: str,
        next_version: int,
        retired: list[str],
    ) -> None:
        self.path = Path(path)
        self.tenant = tenant
        self._keys = dict(keys)
        self._current = current
        self._next_version = next_version
        self._retired = list(retired)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"DcpeKeyring(path={str(self.path)!r}, tenant={self.tenant!r}, "
            f"current={self._current!r}, versions={list(self._keys)!r})"
        )

    @classmethod
    def create(cls, path: Path, *, tenant: str, beta: float) -> DcpeKeyring:
        """Write a new keyring with one fresh version.

        Args:
            path: The file to create (it must not exist; its folder must).
            tenant: The tenant's name.
            beta: The approximation bound of the first version.

        Raises:
            KeyManagementError: The file exists, or tenant or beta is invalid.
        """
        path = Path(path)
        if path.exists():
            raise KeyManagementError(
                f"{path} already exists",
                expected="a path where no keyring exists yet",
                fix="load the existing keyring with DcpeKeyring.load, or choose another path",
            )
        key = DcpeKey.generate(tenant=tenant, beta=beta, key_id=f"{tenant}.v1")
        ring = cls(
            path,
            tenant=tenant,
            keys={key.key_id: key},
            current=key.key_id,
            next_version=2,
            retired=[],
        )
        ring._save()
        logger.info("dcpe-keys: created keyring %s tenant=%s key=%s", path, tenant, key.key_id)
        return ring

    @classmethod
    def load(cls, path: Path) -> DcpeKeyring:
        """Read and validate a keyring file.

        Raises:
            SecretFileError: Group or others may access the file, or another user owns it.
            KeyManagementError: The file is missing or malformed.
        """
        path = Path(path)
        try:
            text = read_secret_file(path, what="DCPE keyring").decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyManagementError(
                f"cannot read the DCPE keyring {path} ({type(exc).__name__})",
                expected="a keyring file written by DcpeKeyring.create",
                fix="check the path and that this user may read it",
            ) from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _malformed(path, f"not valid JSON ({exc.msg})", "a JSON object") from None
        return cls._parse(path, document)

    @classmethod
    def _parse(cls, path: Path, document: Any) -> DcpeKeyring:
        if not isinstance(document, dict) or any(name not in document for name in _FIELDS):
            raise _malformed(path, "not a DCPE keyring", f"an object with {', '.join(_FIELDS)}")
        if document["format"] != KEYRING_FORMAT or document["version"] != KEYRING_VERSION:
            raise _malformed(
                path,
                f"unknown keyring format {document['format']!r} version {document['version']!r}",
                f"format {KEYRING_FORMAT!r} version {KEYRING_VERSION}",
            )
        raw_keys, retired = document["keys"], document["retired"]
        if not (
            isinstance(raw_keys, list)
            and raw_keys
            and isinstance(retired, list)
            and all(isinstance(item, str) for item in retired)
        ):
            raise _malformed(path, "keys or retired is not a list", "a non-empty list of keys")
        try:
            keys = [DcpeKey.from_dict(entry) for entry in raw_keys]
        except KeyManagementError as exc:
            raise _malformed(path, exc.problem, exc.expected) from None
        by_id = {key.key_id: key for key in keys}
        tenant, current, next_version = (
            document["tenant"],
            document["current"],
            document["next_version"],
        )
        if len(by_id) != len(keys) or any(key.tenant != tenant for key in keys):
            raise _malformed(path, "duplicate key ids or keys of another tenant", "unique ids")
        if not isinstance(current, str) or current not in by_id or set(by_id) & set(retired):
            raise _malformed(path, f"current key {current!r} is not live", "a live current key")
        if isinstance(next_version, bool) or not isinstance(next_version, int) or next_version < 1:
            raise _malformed(path, "next_version is not a positive integer", "an integer >= 1")
        return cls(
            path,
            tenant=tenant,
            keys=by_id,
            current=current,
            next_version=next_version,
            retired=[str(item) for item in retired],
        )

    def _document(self) -> dict[str, Any]:
        return {
            "format": KEYRING_FORMAT,
            "version": KEYRING_VERSION,
            "tenant": self.tenant,
            "current": self._current,
            "next_version": self._next_version,
            "retired": self._retired,
            "keys": [key.to_dict() for key in self._keys.values()],
        }

    def _save(self) -> None:
        data = (json.dumps(self._document(), indent=2, allow_nan=False) + "\n").encode()
        write_secret_file(self.path, data)

    @property
    def key_ids(self) -> list[str]:
        """The live versions' ids, oldest first."""
        return list(self._keys)

    def current(self) -> DcpeKey:
        """The version new encryptions use."""
        return self._keys[self._current]

    def get(self, key_id: str) -> DcpeKey:
        """The live version ``key_id``.

        Raises:
            KeyManagementError: The version was retired or never existed.
        """
        key = self._keys.get(key_id)
        if key is None:
            state = "was retired" if key_id in self._retired else "does not exist"
            raise KeyManagementError(
                f"DCPE key {key_id!r} of tenant {self.tenant!r} {state}",
                expected=f"one of {', '.join(self._keys)}",
                fix="re-encrypt data before retiring its key; restore the keyring from a backup "
                "if a needed key was retired",
            )
        return key

    def rotate(self, *, beta: float | None = None) -> DcpeKey:
        """Add a fresh version (new ``s`` and ``K``) and make it current.

        Args:
            beta: The new version's beta; by default the current version's.

        Returns:
            The new current version.
        """
        with self._lock:
            old = self._keys[self._current]
            key = DcpeKey.generate(
                tenant=self.tenant,
                beta=old.beta if beta is None else beta,
                key_id=f"{self.tenant}.v{self._next_version}",
            )
            self._keys[key.key_id] = key
            self._current, self._next_version = key.key_id, self._next_version + 1
            self._save()
        logger.info("dcpe-keys: rotated tenant=%s %s -> %s", self.tenant, old.key_id, key.key_id)
        return key

    def retire(self, key_id: str) -> None:
        """Delete a version for good (its ciphertexts can no longer be decrypted).

        Raises:
            KeyManagementError: ``key_id`` is the current version or is not live.
        """
        with self._lock:
            self.get(key_id)
            if key_id == self._current:
                raise KeyManagementError(
                    f"DCPE key {key_id!r} is the current key of tenant {self.tenant!r}",
                    expected="an older version",
                    fix="rotate first, re-encrypt the data, then retire the old version",
                )
            del self._keys[key_id]
            self._retired.append(key_id)
            self._save()
        logger.info("dcpe-keys: retired tenant=%s key=%s", self.tenant, key_id)

    def reencrypt(self, ciphertext: DcpeCiphertext) -> DcpeCiphertext:
        """Decrypt with the version the ciphertext names and encrypt with the current one.

        Raises:
            KeyManagementError: The ciphertext's version is not live.
        """
        old = ScaleAndPerturb(self.get(ciphertext.key_id))
        new = ScaleAndPerturb(self.current())
        result = new.encrypt(old.decrypt(ciphertext))
        logger.info(
            "dcpe-keys: re-encrypted %d vectors %s -> %s",
            len(ciphertext),
            ciphertext.key_id,
            new.key_id,
        )
        return result
