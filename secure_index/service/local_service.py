"""Start ``fedembed index serve`` as a real process on loopback (demo, tests, benchmarks).

The service gets its secrets through the environment (never the command line), writes
its log to a file in its data directory, and is ready when ``/healthz`` answers.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import ssl
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
from index_client.transport import client_tls_context

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
    ca_file: Path | None = None  # the CA its clients trust (an https:// service)

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """The clients' TLS trust: only ``ca_file``'s CA, else the system trust store."""
        return client_tls_context(self.ca_file if self.ca_file is not None else True)

    def admin_client(self, timeout_s: float = 60.0) -> AdminClient:
        """The operator's typed client (admin token)."""
        return AdminClient(self.url, self.admin_token, timeout_s=timeout_s, verify=self.verify)

    def gateway_client(self, api_key: str, timeout_s: float = 60.0) -> GatewayClient:
        """A partner's or node's typed client."""
        return GatewayClient(self.url, api_key, timeout_s=timeout_s, verify=self.verify)

    def admin(self) -> httpx.Client:
        """A raw HTTP client carrying the admin token (tests that send malformed requests)."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=60,
            verify=self.verify,
        )

    def client(self, token: str, timeout_s: float = 60.0) -> httpx.Client:
        """A raw HTTP client carrying a partner or node key (tests of malformed requests)."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            verify=self.verify,
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
    tls: tuple[Path, Path] | None = None,
    ca_file: Path | None = None,
) -> LocalIndexService:
    """Start the service and wait until it answers; raise with its log tail if it fails.

    ``tls`` (certificate, key) serves HTTPS; ``ca_file`` is the CA its clients trust.
    ``kek`` goes to ``FEDEMBED_INDEX_KEK``; without it, a ``--key-file`` argument or that
    variable, a fresh KEK is made for the process (every role but the store keys its
    audit anchor with it): restart on the same data dir with ``env=service.env``. The
    admin token is a random 43-character token unless ``admin_token`` is given.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    admin_token = admin_token or secrets.token_urlsafe(32)
    child_env = {
        **os.environ,
        ADMIN_TOKEN_ENV: admin_token,
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    if kek is None and "--key-file" not in extra_args and not child_env.get(KEK_ENV):
        kek = secrets.token_bytes(32)
    if kek is not None:
        child_env[KEK_ENV] = base64.b64encode(kek).decode()
    log_path = data_dir / f"service-{port}.log"
    command = [
        sys.executable, "-m", "fedembed", "index", "serve",
        "--data-dir", str(data_dir), "--port", str(port), *extra_args,
    ]  # fmt: skip
    if tls is not None:
        command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    scheme = "https" if tls is not None else "http"
    service = LocalIndexService(
        f"{scheme}://127.0.0.1:{port}",
        data_dir,
        admin_token,
        process,
        log_path,
        child_env,
        ca_file=ca_file,
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            health = httpx.get(service.url + routes.HEALTH.path(), timeout=2, verify=service.verify)
            if health.status_code == 200:
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
