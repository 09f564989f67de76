"""Start ``fedembed index serve`` as a real process on loopback (demo, tests, benchmarks).

The service gets its secrets through the environment (never the command line), writes
its log to a file in its data directory, and is ready when ``/healthz`` answers.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deployment.flower_processes import free_port
from embedding_core.errors import FedembedError
from index_client import routes
from index_client.admin_client import AdminClient
from index_client.gateway_client import GatewayClient

__all__ = ["LocalIndexService", "start_index_service"]

READY_TIMEOUT_S = 120.0
ADMIN_TOKEN_ENV = "FEDEMBED_INDEX_ADMIN_TOKEN"
KEK_ENV = "FEDEMBED_INDEX_KEK"


@dataclass
class LocalIndexService:
    """A running index service process."""

    url: str
    data_dir: Path
    admin_token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    def admin_client(self, timeout_s: float = 60.0) -> AdminClient:
        """The operator's typed client (admin token)."""
        return AdminClient(self.url, self.admin_token, timeout_s=timeout_s)

    def gateway_client(self, api_key: str, timeout_s: float = 60.0) -> GatewayClient:
        """A partner's or node's typed client."""
        return GatewayClient(self.url, api_key, timeout_s=timeout_s)

    def admin(self) -> httpx.Client:
        """A raw HTTP client carrying the admin token (tests that send malformed requests)."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=60
        )

    def client(self, token: str, timeout_s: float = 60.0) -> httpx.Client:
        """A raw HTTP client carrying a partner or node key (tests of malformed requests)."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (graceful: pending logs are folded into a snapshot); returns the code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL: the crash the write-ahead log protects against."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def start_index_service(
    data_dir: Path,
    *,
    port: int | None = None,
    admin_token: str | None = None,
    kek: bytes | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> LocalIndexService:
    """Start the service and wait until it answers; raise with its log tail if it fails."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    admin_token = admin_token or secrets.token_urlsafe(24)
    child_env = {
        **os.environ,
        ADMIN_TOKEN_ENV: admin_token,
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    if kek is not None:
        child_env[KEK_ENV] = base64.b64encode(kek).decode()
    log_path = data_dir / f"service-{port}.log"
    command = [
        sys.executable, "-m", "fedembed", "index", "serve",
        "--data-dir", str(data_dir), "--port", str(port), *extra_args,
    ]  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    service = LocalIndexService(
        f"http://127.0.0.1:{port}", data_dir, admin_token, process, log_path, child_env
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(service.url + routes.HEALTH.path(), timeout=2).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    service.kill()
    tail = log_path.read_text(errors="replace")[-3000:]
    raise FedembedError(
        f"the index service did not start (exit code {process.returncode})",
        expected="a /healthz answer within the timeout",
        fix=f"read its log {log_path}:\n{tail}",
    )
