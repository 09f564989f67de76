"""The model registry: released adapters as numbered, immutable versions; promotion and rollback.

A run that succeeded published ``<home>/runs/<run>/global_adapter/`` (the adapter and its
manifest, :mod:`coordinator.publication`). :meth:`ModelRegistry.register` copies it into
``<home>/models/versions/<n>/`` with a ``version.json`` manifest: the run, when, the base
model (id and fingerprint), the epsilon each observer faces (from the run's federation
ledger: the sample-level epsilon every node charged for a fellow member, and the
node-level epsilon where node-level DP was on) and the SHA-256 of each file. A version is
written once, under a fresh number, and never changed; its files are read-only.

:meth:`ModelRegistry.promote` checks the version's files against their SHA-256 (a
tampered version is refused), sends them to the query gateway
(:meth:`index_client.AdminClient.load_adapter`, which checks them again and serves them
without a restart) and, only once the gateway accepted, records the version as live in
``<home>/models/registry.json``. :meth:`ModelRegistry.rollback` promotes the version that
was live before.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coordinator.admin.errors import (
    AdminConflictError,
    AdminInvalidError,
    AdminNotFoundError,
    AdminUnavailableError,
)
from coordinator.admin.settings import AdminSettings
from coordinator.run_folder import ADAPTER_DIR, HISTORY_FILE, LEDGER_FILE, STATUS_SUCCEEDED
from embedding_core.adapter import MANIFEST_FILE, WEIGHTS_FILE, Adapter
from embedding_core.atomic_file import atomic_write_json
from embedding_core.errors import AdapterError
from index_client import (
    AdminClient,
    AuthenticationError,
    GatewayError,
    GatewayUnavailableError,
    PermissionDeniedError,
    ServedAdapter,
)
from privacy import Observer

__all__ = [
    "REGISTRY_FILE",
    "RUN_NAME_PATTERN",
    "VERSION_FILE",
    "ModelRegistry",
    "epsilon_per_observer",
]

logger = logging.getLogger(__name__)

REGISTRY_FILE = "registry.json"
VERSION_FILE = "version.json"
VERSIONS_DIR = "versions"
RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ADAPTER_FILES = (MANIFEST_FILE, WEIGHTS_FILE)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def epsilon_per_observer(ledger: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """The epsilon each observer faces, from a federation ledger (``to_dict`` form).

    ``sample_level``: the largest epsilon any node charged (its ledger's, for a fellow
    member), for every observer that guarantee covers; ``node_level``: the coordinator's
    node-level epsilon, for the observers it holds for (None: off, or not for them).
    """
    sample = ledger.get("sample_level") or {}
    node = ledger.get("node_level") or {}
    per_node = sample.get("per_node_epsilon") or {}
    largest = max((float(e) for e in per_node.values()), default=None)
    sample_for = set(sample.get("holds_for") or [])
    node_eps = node.get("epsilon")
    node_for = set(node.get("holds_for") or [])
    return {
        o.value: {
            "sample_level": largest if o.value in sample_for else None,
            "node_level": float(node_eps) if node_eps is not None and o.value in node_for else None,
        }
        for o in Observer
    }


class ModelRegistry:
    """Versions of released adapters under ``<home>/models``; promotion to the gateway.

    Args:
        settings: The admin API's settings (home, gateway URL, CA and admin token).
    """

    def __init__(self, settings: AdminSettings) -> None:
        self._settings = settings
        self._root = settings.consortium.models
        self._runs = settings.consortium.runs
        self._lock = threading.Lock()

    @property
    def versions_dir(self) -> Path:
        """``<home>/models/versions``."""
        return self._root / VERSIONS_DIR

    # --- reading ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """``registry.json``: the live version and the versions made live before it."""
        state = _read_json(self._root / REGISTRY_FILE)
        if not isinstance(state, dict):
            return {"live": None, "history": [], "updated": None}
        return state

    def live(self) -> int | None:
        """The version the gateway serves (None: none promoted)."""
        live = self.state().get("live")
        return int(live) if live is not None else None

    def list(self) -> list[dict[str, Any]]:
        """Every version's manifest, oldest first, each with ``live`` and ``intact``."""
        if not self.versions_dir.is_dir():
            return []
        numbers = sorted(int(p.name) for p in self.versions_dir.iterdir() if p.name.isdigit())
        return [self.get(n) for n in numbers]

    def get(self, version: int) -> dict[str, Any]:
        """One version's manifest, with ``live`` and ``intact`` (its files match their hashes).

        Raises:
            AdminNotFoundError: There is no such version.
        """
        manifest = self._manifest(version)
        return {**manifest, "live": self.live() == version, "intact": not self._damaged(version)}

    def _folder(self, version: int) -> Path:
        return self.versions_dir / str(version)

    def _manifest(self, version: int) -> dict[str, Any]:
        manifest = _read_json(self._folder(version) / VERSION_FILE)
        if not isinstance(manifest, dict):
            raise AdminNotFoundError(
                f"there is no model version {version}",
                expected="a version number from GET /v1/models",
                fix="register a run's adapter with POST /v1/models/register",
            )
        return manifest

    def _damaged(self, version: int) -> builtins.list[str]:
        """The files of ``version`` that are missing or do not match their SHA-256."""
        folder, files = self._folder(version), self._manifest(version).get("files", {})
        return [
            name
            for name in ADAPTER_FILES
            if not (folder / name).is_file() or _sha256(folder / name) != files.get(name)
        ]

    # --- registering --------------------------------------------------------------------

    def register(self, run: str) -> dict[str, Any]:
        """Copy the adapter a succeeded run published into a new, immutable version.

        Raises:
            AdminInvalidError: ``run`` is not a run name.
            AdminNotFoundError: There is no such run, or it published no adapter.
            AdminConflictError: The run did not succeed, or it is already registered.
        """
        source = self._published(run)
        with self._lock:
            for existing in self.list():
                if existing.get("run") == run:
                    raise AdminConflictError(
                        f"run {run!r} is already model version {existing['version']}",
                        expected="a run not registered yet",
                        fix=f"use version {existing['version']} (GET /v1/models/"
                        f"{existing['version']})",
                    )
            adapter_manifest = Adapter.read_manifest(source)
            ledger = (adapter_manifest.get("metadata") or {}).get("ledger")
            if not isinstance(ledger, dict):
                ledger = _read_json(self._runs / run / LEDGER_FILE) or {}
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.versions_dir))
            try:
                for name in ADAPTER_FILES:
                    shutil.copyfile(source / name, staging / name)
                version = self._next_number()
                manifest = {
                    "version": version,
                    "run": run,
                    "created": _now(),
                    "base_model": dict(adapter_manifest.get("base_model") or {}),
                    "adapter": {
                        key: adapter_manifest.get(key)
                        for key in ("kind", "side", "in_dim", "out_dim", "rank")
                    },
                    "epsilon": {
                        "per_observer": epsilon_per_observer(ledger),
                        "per_node": dict(
                            (ledger.get("sample_level") or {}).get("per_node_epsilon") or {}
                        ),
                        "node_level": (ledger.get("node_level") or {}).get("epsilon"),
                    },
                    "files": {name: _sha256(staging / name) for name in ADAPTER_FILES},
                }
                (staging / VERSION_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
                for name in (*ADAPTER_FILES, VERSION_FILE):
                    os.chmod(staging / name, 0o444)
                os.rename(staging, self._folder(version))  # fails if the number was taken
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        logger.info("register: run=%s version=%d", run, version)
        return {**manifest, "live": False, "intact": True}

    def _next_number(self) -> int:
        taken = [int(p.name) for p in self.versions_dir.iterdir() if p.name.isdigit()]
        return max(taken, default=0) + 1

    def _published(self, run: str) -> Path:
        """The run's published adapter folder, once the run is known to have succeeded."""
        if not isinstance(run, str) or not re.fullmatch(RUN_NAME_PATTERN, run):
            raise AdminInvalidError(
                f"run {run!r} is not a run name",
                expected="run: a run's name as GET /v1/runs lists it",
                fix="pass the run's name",
            )
        folder = self._runs / run
        if not folder.is_dir():
            raise AdminNotFoundError(
                f"there is no run {run!r}",
                expected="run: a run's name as GET /v1/runs lists it",
                fix="check the name",
            )
        # The outcome the ServerApp itself wrote when the run ended (history.json), not
        # the admin API's view of it: a run without one has not finished.
        record = _read_json(folder / HISTORY_FILE)
        status = str(record.get("status", "")) if isinstance(record, dict) else "running"
        if status != STATUS_SUCCEEDED:
            raise AdminConflictError(
                f"run {run!r} is {status or 'unfinished'}, so it released no model",
                expected="a run whose status is succeeded (GET /v1/runs/{name})",
                fix="wait until the run has finished, or register another run",
            )
        source = folder / ADAPTER_DIR
        if not all((source / name).is_file() for name in ADAPTER_FILES):
            raise AdminNotFoundError(
                f"run {run!r} published no adapter",
                expected=f"runs/{run}/{ADAPTER_DIR}/ with {MANIFEST_FILE} and {WEIGHTS_FILE}",
                fix="register a run that succeeded",
            )
        try:
            Adapter.read_manifest(source)
        except AdapterError as exc:
            raise AdminConflictError(
                f"run {run!r}'s adapter manifest is not readable ({exc.problem})",
                expected="the manifest the run published",
                fix="register another run",
            ) from None
        return source

    # --- promotion ----------------------------------------------------------------------

    def promote(self, version: int) -> dict[str, Any]:
        """Serve ``version`` on the gateway; record it live once the gateway accepted.

        Raises:
            AdminNotFoundError: There is no such version.
            AdminConflictError: Its files do not match their SHA-256, or the gateway
                refused the adapter (another base model ...).
            AdminUnavailableError: No gateway is configured, or it cannot be reached.
        """
        with self._lock:
            served = self._send(version)
            state = self.state()
            history = [int(v) for v in state.get("history", [])]
            if not history or history[-1] != version:
                history.append(version)
            self._write_state(version, history)
        logger.info("promote: version=%d", version)
        return self._answer(version, served)

    def rollback(self) -> dict[str, Any]:
        """Promote the version that was live before the current one.

        Raises:
            AdminConflictError: No version was live before the current one.
        """
        with self._lock:
            history = [int(v) for v in self.state().get("history", [])]
            if len(history) < 2:
                raise AdminConflictError(
                    "no version was live before the current one",
                    expected="at least two promotions before a rollback",
                    fix="promote a version with POST /v1/models/{version}/promote",
                )
            previous = history[-2]
            served = self._send(previous)
            self._write_state(previous, history[:-1])
        logger.info("rollback: version=%d", previous)
        return self._answer(previous, served)

    def _answer(self, version: int, served: ServedAdapter) -> dict[str, Any]:
        return {
            "live": version,
            "model": self.get(version),
            "gateway": {
                "version": served.version,
                "weights_sha256": served.weights_sha256,
                "manifest_sha256": served.manifest_sha256,
            },
        }

    def _write_state(self, live: int, history: builtins.list[int]) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self._root / REGISTRY_FILE, {"live": live, "history": history, "updated": _now()}
        )

    def _send(self, version: int) -> ServedAdapter:
        manifest = self._manifest(version)
        damaged = self._damaged(version)
        if damaged:
            raise AdminConflictError(
                f"model version {version}'s {', '.join(damaged)} do(es) not match the SHA-256 "
                "in its manifest; it was not promoted",
                expected="the files as they were registered",
                fix="register the run again as a new version, and find out who changed them",
            )
        settings = self._settings
        if not settings.gateway_url or settings.gateway_admin_token is None:
            raise AdminUnavailableError(
                "the admin API knows no query gateway",
                expected="FEDEMBED_ADMIN_GATEWAY_URL and FEDEMBED_INDEX_ADMIN_TOKEN",
                fix="restart the admin API with the gateway's URL and admin token",
            )
        verify = settings.gateway_ca if settings.gateway_ca is not None else True
        files = manifest["files"]
        try:
            with AdminClient(
                settings.gateway_url,
                settings.gateway_admin_token.get_secret_value(),
                verify=verify,
            ) as client:
                return client.load_adapter(
                    self._folder(version),
                    version=str(version),
                    manifest_sha256=files[MANIFEST_FILE],
                    weights_sha256=files[WEIGHTS_FILE],
                )
        except (GatewayUnavailableError, AuthenticationError, PermissionDeniedError) as exc:
            raise AdminUnavailableError(
                f"the query gateway did not take model version {version} ({exc.problem})",
                expected="a running gateway that accepts FEDEMBED_INDEX_ADMIN_TOKEN",
                fix="check the gateway's URL, CA and admin token, then promote again",
            ) from None
        except GatewayError as exc:
            raise AdminConflictError(
                f"the query gateway refused model version {version}: {exc.problem}",
                expected=exc.expected or "an adapter the gateway's encoder can use",
                fix=exc.fix or "promote a version trained on the gateway's base model",
            ) from None
