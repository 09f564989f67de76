"""Start Flower's real SuperLink and SuperNodes as processes, and run ``flwr run``.

Used by ``fedembed node start`` (one on-premise node), by ``fedembed demo`` (a whole
consortium on loopback) and by the deployment-engine tests. Transport is always TLS
with the consortium CA, and SuperNodes authenticate with their kit's key.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from deployment.flower_supernode import POLL_ENV, WARM_ENV, warm_enabled
from embedding_core.errors import FedembedError
from federation.node_privacy import NodePrivacy
from federation.round_settings import RecordValue
from federation.wire import NodeConfigKey
from kits.layout import CoordinatorKit, NodeKit

__all__ = [
    "FLOWER_DEFAULTS_ENV",
    "FLOWER_ENV",
    "ManagedProcess",
    "flwr_command",
    "flwr_run",
    "free_port",
    "register_supernode",
    "start_superlink",
    "start_supernode",
    "wait_for_port",
    "write_flwr_connection",
]

logger = logging.getLogger(__name__)

_BIN = Path(sys.executable).parent
_STARTUP_TIMEOUT = 60.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LOG_ENTRY = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s*:")
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# Every Flower process fedembed starts: no telemetry or update check (nothing leaves the
# host but the federation's own traffic; offline, each process's exit would wait up to
# 4 s for the telemetry call), and SuperExec picks up a waiting ClientApp/ServerApp task
# within 0.1 s instead of 1 s. The caller's environment wins.
FLOWER_ENV: dict[str, str] = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1",
}
# Flower 1.42's own defaults, for comparison (benchmarks/bench_round_cost.py).
FLOWER_DEFAULTS_ENV: dict[str, str] = {
    "FLWR_TELEMETRY_ENABLED": "1",
    "FLWR_DISABLE_UPDATE_CHECK": "0",
    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "1.0",
    POLL_ENV: "3",
    WARM_ENV: "0",
}


class _StopRequestedError(Exception):
    """A stop signal arrived while a foreground process ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _request_stop(signum: int, _frame: FrameType | None) -> None:
    raise _StopRequestedError(signum)


def _tool(name: str) -> str:
    local = _BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FedembedError(f"{name} not found", fix="install fedembed (it depends on flwr)")
    return found


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float = _STARTUP_TIMEOUT, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until something listens on 127.0.0.1:port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise FedembedError(
                f"process exited with code {process.returncode} before listening on {port}"
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise FedembedError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@dataclass
class ManagedProcess:
    """A child process with its log file; stop() terminates its process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (simulates a crash)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        """The process's output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def error_line(self) -> str | None:
        """The log's last ERROR entry with its continuation lines, on one line (no colours).

        ``None`` when the log holds no ERROR entry.
        """
        lines = [_ANSI.sub("", line).rstrip() for line in self.log().splitlines()]
        starts = [n for n, line in enumerate(lines) if line.startswith("ERROR")]
        if not starts:
            return None
        first = lines[starts[-1]].split(":", 1)[1].strip()
        entry = [first] if first else []
        for line in lines[starts[-1] + 1 :]:
            if not line.strip() or _LOG_ENTRY.match(line):
                break
            entry.append(line.strip())
        return " ".join(entry)

    def run_in_foreground(self, *, ready: Callable[[], None] | None = None) -> int | None:
        """Wait for the process; Ctrl-C, SIGTERM or SIGHUP stop its whole process group.

        Args:
            ready: Called once the signal handlers are in place (e.g. to announce that
                the process runs), so a signal sent on that announcement is handled.

        Returns:
            The process's exit status when it ended on its own, ``None`` when a signal
            stopped it (the process group is then terminated, as by :meth:`stop`).
        """
        in_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, _request_stop) for s in _STOP_SIGNALS} if in_main else {}
        try:
            try:
                if ready is not None:
                    ready()
                return self.process.wait()
            finally:  # a second signal while stopping acts as usual
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        except (KeyboardInterrupt, _StopRequestedError):
            self.stop()
            return None


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # SuperLink/SuperNode start flower-superexec and friends through PATH.
    path = f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**FLOWER_ENV, **os.environ, "PATH": path, **(extra or {})}


def _spawn(
    name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> ManagedProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = log_path.open("wb")
    logger.info("spawn: %s -> %s", name, log_path)
    process = subprocess.Popen(
        args,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=_child_env(env),
        start_new_session=True,
    )
    return ManagedProcess(name, process, log_path)


def start_superlink(
    *,
    coordinator_kit: CoordinatorKit,
    state_dir: Path,
    port: int | None = None,
    enable_auth: bool = True,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    """Start a SuperLink serving HTTPS with the (checked) coordinator kit's certificate."""
    port = port or free_port()
    args = [
        _tool("flower-superlink"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *coordinator_kit.superlink_tls_args(),
        "--database",
        str(state_dir / "superlink.db"),
        "--disable-runtime-dependency-installation",
    ]
    if enable_auth:
        args.append("--enable-supernode-auth")
    link = _spawn("superlink", args, state_dir / "superlink.log", env)
    wait_for_port(port, process=link.process)
    link.extra.update(port=port, address=f"127.0.0.1:{port}")
    return link


def write_flwr_connection(flwr_home: Path, name: str, *, address: str, ca_cert: Path) -> None:
    """Write ``$FLWR_HOME/config.toml`` with a TLS connection ``[superlink.NAME]``."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    config = flwr_home / "config.toml"
    text = config.read_text() if config.exists() else ""
    text += f'\n[superlink.{name}]\naddress = "{address}"\nroot-certificates = "{ca_cert}"\n'
    config.write_text(text)


def _flwr_env(flwr_home: Path) -> dict[str, str]:
    return {**_child_env(), "FLWR_HOME": str(flwr_home)}


def flwr_command(
    args: list[str], *, flwr_home: Path, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``flwr ARGS...`` with ``FLWR_HOME=flwr_home``; output captured, never raises on exit.

    Raises:
        FedembedError: ``flwr`` is not installed, or it ran past ``timeout`` seconds.
    """
    try:
        return subprocess.run(
            [_tool("flwr"), *args],
            capture_output=True,
            text=True,
            env=_flwr_env(flwr_home),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FedembedError(
            f"`flwr {args[0] if args else ''}` did not answer within {timeout:.0f} s",
            expected="a SuperLink that answers on its Control API",
            fix="check that the SuperLink runs and that FLWR_HOME/config.toml names it",
        ) from exc


def register_supernode(*, public_key: Path, name: str, connection: str, flwr_home: Path) -> None:
    """Register a SuperNode's public key with the SuperLink (``flwr supernode register``)."""
    result = flwr_command(
        ["supernode", "register", str(public_key), connection, "--name", name],
        flwr_home=flwr_home,
    )
    if result.returncode != 0:
        raise FedembedError(f"registering SuperNode {name} failed: {result.stdout}{result.stderr}")


def _toml_value(value: RecordValue) -> str:
    """A ``--node-config`` value as Flower parses it (TOML scalars)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def start_supernode(
    *,
    node_kit: NodeKit,
    data_dir: Path,
    superlink_address: str,
    node_name: str,
    log_dir: Path,
    node_privacy: NodePrivacy,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    """Start an authenticated SuperNode over TLS for one member's data folder.

    The SuperNode runs through ``deployment.flower_supernode`` (Flower's SuperNode,
    polling its SuperLink every 0.5 s) in Flower's ``process`` isolation mode, with the
    warm SuperExec of ``deployment.warm_superexec`` beside it in its process group:
    :meth:`ManagedProcess.stop` stops both. ``FEDEMBED_WARM_CLIENTAPP=0`` in ``env`` or
    the environment keeps Flower's own SuperExec (a fresh process per message).

    ``node_privacy`` is the operator's bound on what the coordinator may ask of the node
    (its budget, whether DP is required, the shares and noise it accepts).
    """
    port = port or free_port()
    node_config: dict[str, RecordValue] = {
        NodeConfigKey.DATA_DIR.value: str(data_dir),
        NodeConfigKey.NODE_NAME.value: node_name,
        NodeConfigKey.KIT_DIR.value: str(node_kit.path),
        **node_privacy.to_node_config(),
    }
    config_text = " ".join(f"{k}={_toml_value(v)}" for k, v in node_config.items())
    _tool("flower-supernode")  # Flower installed; its SuperNode, polling more often
    isolation = ["--isolation", "process"] if warm_enabled(_child_env(env)) else []
    args = [
        sys.executable,
        "-m",
        "deployment.flower_supernode",
        "--superlink",
        superlink_address,
        "--port",
        str(port),
        *node_kit.supernode_args(),
        "--node-config",
        config_text,
        *isolation,
    ]
    node = _spawn(f"supernode-{node_name}", args, log_dir / f"supernode-{node_name}.log", env)
    node.extra.update(port=port, node_name=node_name)
    return node


def flwr_run(
    *,
    project_dir: Path,
    connection: str,
    flwr_home: Path,
    run_config: dict[str, Any],
    timeout: float,
    log_path: Path,
) -> subprocess.CompletedProcess[str]:
    """``flwr run PROJECT CONNECTION --stream --run-config ...``; output saved to log_path."""
    overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in run_config.items())
    args = [_tool("flwr"), "run", str(project_dir), connection, "--stream"]
    if overrides:
        args += ["--run-config", overrides]
    logger.info("flwr run: connection=%s keys=%s", connection, sorted(run_config))
    result = subprocess.run(
        args, capture_output=True, text=True, env=_flwr_env(flwr_home), timeout=timeout, check=False
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(result.stdout + result.stderr)
    return result
