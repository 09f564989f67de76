"""The gateway's promoted adapter on disk: checked, kept across restarts, swapped in place.

An operator (the consortium's model registry) promotes a released query-side adapter
with ``PUT /v1/admin/adapter``: the two files of
:meth:`embedding_core.adapter.Adapter.save` and the SHA-256 of each. They are checked
(both hashes, the manifest, the weights against the manifest, the query side, the
encoder's width and fingerprint) in a staging folder, kept as
``<data dir>/adapters/<hashes>/`` (named by both files' SHA-256) and named live by
``adapters/current.json``, replaced atomically, so a crash leaves either the old or the new
adapter live. At start the gateway serves the live adapter it finds there (it wins over
``--adapter``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedding_core.adapter import MANIFEST_FILE, WEIGHTS_FILE, Adapter
from embedding_core.atomic_file import atomic_write_bytes
from embedding_core.errors import AdapterError, FedembedError
from secure_index.errors import RequestError
from secure_index.service.query_embedder import QueryEmbedder

__all__ = ["ADAPTERS_DIR", "AdapterRelease", "PromotedAdapters", "sha256_hex"]

logger = logging.getLogger(__name__)

ADAPTERS_DIR = "adapters"
"""The promoted adapters' folder inside the gateway's data dir."""
CURRENT_FILE = "current.json"


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class AdapterRelease:
    """What the gateway says about the adapter it serves (never weights).

    Attributes:
        version: The operator's label of the release (the registry's version).
        weights_sha256: SHA-256 of ``adapter.safetensors``.
        manifest_sha256: SHA-256 of ``adapter.json``.
        kind: The adapter's parameterisation.
        base_model_id: The encoder it was trained on.
        base_model_fingerprint: That encoder's fingerprint.
        promoted_at: When it was promoted (UTC, ISO 8601).
    """

    version: str
    weights_sha256: str
    manifest_sha256: str
    kind: str
    base_model_id: str | None
    base_model_fingerprint: str | None
    promoted_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def _release(version: str, manifest: bytes, weights: bytes, adapter: Adapter) -> AdapterRelease:
    return AdapterRelease(
        version=version,
        weights_sha256=sha256_hex(weights),
        manifest_sha256=sha256_hex(manifest),
        kind=adapter.kind.value,
        base_model_id=adapter.base_model.get("id"),
        base_model_fingerprint=adapter.base_model.get("fingerprint"),
        promoted_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _check_sha(name: str, data: bytes, expected: str) -> None:
    if sha256_hex(data) != expected.lower():
        raise RequestError(
            f"{name} does not match the SHA-256 sent with it",
            expected=f"the bytes of {name} whose SHA-256 is the one sent",
            fix="send the files exactly as the registry holds them; a changed or "
            "truncated file is refused",
        )


class PromotedAdapters:
    """The promoted adapter of one gateway: check, keep, swap in and restore at start.

    Args:
        embedder: The gateway's query embedder (the adapter is swapped into it).
        root: ``<data dir>/adapters``; ``None`` keeps promotions in memory only.
    """

    def __init__(self, embedder: QueryEmbedder, root: Path | None) -> None:
        self._embedder = embedder
        self._root = root
        self._current: AdapterRelease | None = None
        self._lock = threading.Lock()  # one promotion at a time

    @property
    def current(self) -> AdapterRelease | None:
        """The promoted adapter being served (None: none promoted)."""
        return self._current

    def promote(
        self,
        *,
        version: str,
        manifest: bytes,
        weights: bytes,
        manifest_sha256: str,
        weights_sha256: str,
    ) -> AdapterRelease:
        """Check the adapter, keep it, and serve it from the next query on.

        Raises:
            RequestError: A hash does not match, the files are not an adapter, or the
                adapter does not fit this gateway's encoder (nothing changes).
        """
        _check_sha(MANIFEST_FILE, manifest, manifest_sha256)
        _check_sha(WEIGHTS_FILE, weights, weights_sha256)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self._staging_parent()))
        try:
            (staging / MANIFEST_FILE).write_bytes(manifest)
            (staging / WEIGHTS_FILE).write_bytes(weights)
            adapter = _load(staging, MANIFEST_FILE)
            if str(Adapter.read_manifest(staging).get("weights_file", WEIGHTS_FILE)) != (
                WEIGHTS_FILE
            ):
                raise RequestError(
                    "the manifest names another weights file",
                    expected=f'"weights_file": "{WEIGHTS_FILE}"',
                    fix="send the files `Adapter.save` wrote",
                )
            if not adapter.base_model.get("fingerprint"):
                raise RequestError(
                    "the adapter manifest names no base model fingerprint",
                    expected='"base_model": {"id": ..., "fingerprint": ...} in adapter.json',
                    fix="release the adapter with `Adapter.save(base_model_fingerprint=...)`",
                )
            _swap_check(self._embedder, adapter)
            release = _release(version, manifest, weights, adapter)
            with self._lock:
                previous = self._embedder.swap_adapter(adapter)  # checks side and width
                try:
                    if self._root is not None:
                        self._keep(staging, release)
                except OSError:
                    self._embedder.swap_adapter(previous)
                    raise
                self._current = release
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        logger.info("promote: version=%s weights=%s", version, release.weights_sha256[:12])
        return release

    def restore(self) -> AdapterRelease | None:
        """Serve the adapter that was live when the gateway stopped (None: none).

        Raises:
            FedembedError: The live adapter on disk no longer verifies (the gateway
                does not start rather than serve another model).
        """
        if self._root is None or not (self._root / CURRENT_FILE).is_file():
            return None
        pointer = self._root / CURRENT_FILE
        try:
            release = AdapterRelease(**json.loads(pointer.read_text()))
            folder = self._root / _folder_name(release)
            manifest = (folder / MANIFEST_FILE).read_bytes()
            weights = (folder / WEIGHTS_FILE).read_bytes()
            _check_sha(MANIFEST_FILE, manifest, release.manifest_sha256)
            _check_sha(WEIGHTS_FILE, weights, release.weights_sha256)
            adapter = Adapter.load(folder)
            self._embedder.swap_adapter(adapter)
        except (OSError, ValueError, TypeError, FedembedError) as exc:
            problem = exc.problem if isinstance(exc, FedembedError) else type(exc).__name__
            raise FedembedError(
                f"the promoted adapter named by {pointer} does not verify ({problem})",
                expected="the adapter files as they were promoted",
                fix=f"promote the version again, or remove {pointer} to serve --adapter",
            ) from None
        self._current = release
        logger.info("restore: version=%s", release.version)
        return release

    def _staging_parent(self) -> Path | None:
        if self._root is None:
            return None
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self._root

    def _keep(self, staging: Path, release: AdapterRelease) -> None:
        """Move the checked files to their folder and name them live."""
        assert self._root is not None
        folder = self._root / _folder_name(release)
        if folder.is_dir() and not _same_files(folder, release):
            shutil.rmtree(folder)  # changed on disk since: replace with the checked files
        if not folder.is_dir():
            staging.rename(folder)
        document = json.dumps(release.to_dict(), indent=2) + "\n"
        atomic_write_bytes(self._root / CURRENT_FILE, document.encode())


def _folder_name(release: AdapterRelease) -> str:
    """The folder of a release's files: named by both their hashes."""
    return f"{release.weights_sha256[:32]}-{release.manifest_sha256[:32]}"


def _same_files(folder: Path, release: AdapterRelease) -> bool:
    try:
        manifest = (folder / MANIFEST_FILE).read_bytes()
        weights = (folder / WEIGHTS_FILE).read_bytes()
    except OSError:
        return False
    return (sha256_hex(manifest), sha256_hex(weights)) == (
        release.manifest_sha256,
        release.weights_sha256,
    )


def _load(folder: Path, manifest_name: str) -> Adapter:
    try:
        return Adapter.load(folder)
    except AdapterError as exc:
        raise RequestError(
            f"the files are not a fedembed adapter ({exc.problem})",
            expected=f"{manifest_name} and {WEIGHTS_FILE} as `Adapter.save` writes them",
            fix="send the files of a released adapter (the registry's version folder)",
        ) from None


def _swap_check(embedder: QueryEmbedder, adapter: Adapter) -> None:
    """Whether ``embedder`` would take ``adapter`` (the checks of its swap, in the API's words)."""
    fingerprint = embedder.model_fingerprint
    if fingerprint is None:
        raise RequestError(
            "this gateway does not embed text, so it uses no adapter",
            expected="a gateway started with text queries on",
            fix="start the gateway without --no-text-queries",
        )
    if adapter.base_model.get("fingerprint") != fingerprint:
        raise RequestError(
            f"the adapter was trained on another base model ({adapter.base_model.get('id')})",
            expected=f"base_model.fingerprint {fingerprint[:16]}..., the gateway encoder's",
            fix="promote an adapter trained on the gateway's base model",
        )
